#!/usr/bin/env python3
"""SIGSTOP a follower under load, then the leader; each resumes and catches up.

Three voters under write and linearizable read load. Round 1: a follower is paused; the other
two keep committing; the leader's member table shows the paused node falling behind; after
SIGCONT it catches up with the leader's commit index. Round 2: the leader itself is paused
(a hung leader: the others elect a new one and keep committing), then resumed: it must step
down and catch up, and nothing it serves after waking may break linearizability (the reads it
answers are in the history the checker judges). Then the checks every test ends with.
"""

import random
import time

import harness
from harness import check, log

ACKS_WHILE_PAUSED = 15     # acknowledged while the node is stopped
ACKS_BEFORE = (5, 30)      # seeded, before each pause
ACK_WAIT_S = 60
LAG_ENTRIES = 5            # the leader must see the paused follower this far behind
NEW_LEADER_S = 10


def member(status, node_id):
    for m in status.get("members", []):
        if m.get("id") == node_id:
            return m
    return None


def main():
    args = harness.parse_args()
    rng = random.Random(args.seed)
    work = harness.Workdir("fpause", args.keep)
    cluster = harness.Cluster(args, work.path, voters=3)
    history = harness.History()
    ok = False
    try:
        cluster.up()
        load = harness.Workload(cluster, history, args.seed, "fpause").start()

        # Round 1: a follower.
        load.wait_acks(history.count("append", "ok") + rng.randint(*ACKS_BEFORE), ACK_WAIT_S)
        lead = cluster.wait_leader()
        follower = rng.choice([i for i in cluster.ids() if i != lead])
        cluster.pause(follower)
        t = time.monotonic()
        load.wait_acks(ACKS_WHILE_PAUSED, ACK_WAIT_S, since=t,
                       what=f"acknowledgements while follower {follower} is paused")

        def behind():
            s = cluster.status(lead)
            m = s and member(s, follower)
            if m is None or "match_index" not in m:
                return None
            return s if s["last_index"] - m["match_index"] >= LAG_ENTRIES else None
        s = harness.poll(f"leader {lead} seeing follower {follower} behind", behind, ACK_WAIT_S)
        log(f"leader {lead}: follower {follower} match {member(s, follower)['match_index']} of "
            f"{s['last_index']} (lag {member(s, follower).get('lag')})")
        cluster.resume(follower)
        lead = cluster.wait_leader()
        cluster.wait_caught_up(follower, cluster.status(lead)["commit_index"])

        # Round 2: the leader.
        load.wait_acks(history.count("append", "ok") + rng.randint(*ACKS_BEFORE), ACK_WAIT_S)
        lead = cluster.wait_leader()
        before = cluster.status(lead)
        cluster.pause(lead)
        t = time.monotonic()
        new = cluster.wait_leader(NEW_LEADER_S, exclude=(lead,))
        log(f"paused leader {lead}; node {new} leads after {time.monotonic() - t:.2f} s")
        load.wait_acks(ACKS_WHILE_PAUSED, ACK_WAIT_S, since=t,
                       what=f"acknowledgements while leader {lead} is paused")
        cluster.resume(lead)
        t = time.monotonic()
        # Right after waking it may still believe it leads: its reads go into the history.
        for patient in load.patients[:3]:
            load.read_once(lead, patient, process=f"woken@{lead}")
        now = cluster.wait_leader()
        check(now != lead or cluster.status(lead)["term"] > before["term"],
              f"node {lead} leads in its old term after waking")
        cluster.wait_caught_up(lead, cluster.status(now)["commit_index"])
        load.wait_acks(ACKS_WHILE_PAUSED, ACK_WAIT_S, since=t, what="acknowledgements after")
        cluster.final_checks(load, history, work.path)
        ok = True
    finally:
        if not ok:
            cluster.destroy()
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
