#!/usr/bin/env python3
"""SIGKILL the leader under write load, twice; a new leader commits within 10 s each time.

Three voters; writers append with their own request ids through any serving node (followers
forward to the leader) and retry every unacknowledged append with the same request id; readers
read whole timelines linearizably. After a seeded number of acknowledgements the leader is
SIGKILLed. A surviving node must lead and commit past the old leader's commit index within
LEADER_COMMIT_S, and acknowledgements must continue; the killed node is restarted and catches
up. The end: no acknowledged append lost, no request id twice in any read, the history
linearizable, equal chain heads, verify on every node (harness.Cluster.final_checks).
"""

import random
import time

import harness
from harness import check, log

ROUNDS = 2
LEADER_COMMIT_S = 10          # the requirement: a new leader commits within this
ACKS_BEFORE_KILL = (10, 60)   # seeded number of acknowledgements before each kill
ACKS_AFTER_KILL = 10          # acknowledged after the kill before the restart
ACKS_AFTER_RESTART = 10
ACK_WAIT_S = 60


def main():
    args = harness.parse_args()
    rng = random.Random(args.seed)
    work = harness.Workdir("lkill", args.keep)
    cluster = harness.Cluster(args, work.path, voters=3)
    history = harness.History()
    ok = False
    try:
        cluster.up()
        load = harness.Workload(cluster, history, args.seed, "lkill").start()
        for round_ in range(ROUNDS):
            want = history.count("append", "ok") + rng.randint(*ACKS_BEFORE_KILL)
            load.wait_acks(want, ACK_WAIT_S)
            lead = cluster.wait_leader()
            before = cluster.status(lead)
            check(before is not None, f"leader {lead} does not answer")
            cluster.kill(lead)
            t_kill = time.monotonic()
            survivors = [i for i in cluster.ids() if i != lead]

            def committed_by_new_leader():
                for i in survivors:
                    s = cluster.status(i, timeout_s=1)
                    if (s and s["role"] == "leader" and s["term"] > before["term"] and
                            s["commit_index"] > before["commit_index"]):
                        return i, s
                return None
            new, s = harness.poll(f"a new leader committing within {LEADER_COMMIT_S} s",
                                  committed_by_new_leader, LEADER_COMMIT_S)
            took = time.monotonic() - t_kill
            log(f"round {round_ + 1}: killed leader {lead} (term {before['term']}, commit "
                f"{before['commit_index']}); node {new} leads term {s['term']} and committed "
                f"index {s['commit_index']} {took:.2f} s later")
            took = load.wait_acks(ACKS_AFTER_KILL, ACK_WAIT_S, since=t_kill,
                                  what="acknowledgements after the kill")
            cluster.start(lead)
            lead_now = cluster.wait_leader()
            cluster.wait_caught_up(lead, cluster.status(lead_now)["commit_index"])
            load.wait_acks(ACKS_AFTER_RESTART, ACK_WAIT_S, since=time.monotonic(),
                           what="acknowledgements after the restart")
        cluster.final_checks(load, history, work.path)
        ok = True
    finally:
        if not ok:
            cluster.destroy()
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
