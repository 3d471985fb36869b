#!/usr/bin/env python3
"""The access log is region-wide and loses no row: issue 5, acceptance item 2.

A region of three voters and one learner (deploy/local-cluster; node N acts for local-org-N).
Every organisation gets a care relation for one patient (Cluster.care) and a clinician writes a
note. Then:

1. A clinician reads the patient at the LEARNER. An auditor asks `access-log --patient P` at a
   voter (another node, another organisation) until the row is there (bounded: shipping runs
   every ~200 ms): who (actor, role, organisation), node, action read, decision allowed, basis
   relation, shipped; `access-log --actor ... --org local-org-L` at a third node finds it too.
2. A clinician reads at a follower voter, and the moment carelogctl has the answer the test
   SIGKILLs that node (straight from its pid file). The row must have been durable in the
   node's audit queue before the answer left. While the node is down, the two other voters agree
   on a commit index and the row is looked for at one of them: when it is absent it was not
   shipped before the kill (if it was, the attempt proves nothing and is repeated, at most
   KILL_TRIES times, with a new read). The node is restarted; its shipper must then ship the
   row, and it must show up at the other node within SHIP_AFTER_RESTART_S.
Then: every node converges, `verify` passes on each, a clean shutdown, no patient id in any log.
Every wait is a poll with a deadline; the seed (printed) only names the patient.
"""

import json
import os
import signal
import time

import harness
from harness import check, log

AUDITOR = "ctest-auditor:auditor"
READER_ID = "ctest-clinician"
READER = harness.CLINICIAN
SHIP_WAIT_S = 30            # a row reaches another node's access log within this
SHIP_AFTER_RESTART_S = 60   # ... after its node restarts (includes the node's recovery)
KILL_TRIES = 5
EXIT_WAIT_S = 30


def access_log(cluster, node_id, patient=None, actor_id=None, org=None):
    argv = ["--actor", AUDITOR, "access-log", "--limit", "1000", "--json"]
    argv += ["--patient", patient] if patient else ["--actor", actor_id, "--org", org]
    r = cluster.ctl(node_id, argv)
    check(r.returncode == 0, f"access-log at node {node_id}: exit {r.returncode}: "
          f"{r.stderr.strip()}")
    rows = json.loads(r.stdout).get("rows")
    check(isinstance(rows, list), f"access-log: no rows: {r.stdout[:300]}")
    return rows


def allowed(row):
    return row.get("decision") == "allowed" if "decision" in row else bool(row.get("allowed"))


def row_node(row):
    return row.get("node", row.get("node_id"))


def find_row(rows, **want):
    for row in rows:
        if all(row.get(k) == v for k, v in want.items()):
            return row
    return None


def wait_row(cluster, node_id, what, seconds, **want):
    last = []

    def found():
        rows = access_log(cluster, node_id, patient=want.get("patient"))
        last[:] = rows
        return find_row(rows, **want)
    try:
        return harness.poll(f"{what} in the access log at node {node_id}", found, seconds)
    except harness.TestFailure as e:
        raise harness.TestFailure(f"{e}; newest rows seen: {json.dumps(last[:8])}")


def read(cluster, node_id, patient, purpose):
    r = cluster.ctl(node_id, ["--actor", READER, "--purpose", purpose, "read", "--patient",
                              patient, "--json"])
    check(r.returncode == 0, f"read at node {node_id}: exit {r.returncode}: {r.stderr.strip()}")
    reply = json.loads(r.stdout)
    check(reply.get("basis") == "relation", f"read at node {node_id}: basis {reply.get('basis')}")
    return reply


def sigkill_now(cluster, node_id):
    """SIGKILL straight from the pid file (no helper process in between), then wait until the
    node's monitor recorded its exit."""
    with open(os.path.join(cluster.node_dir(node_id), "carelogd.pid")) as f:
        os.kill(int(f.read().strip()), signal.SIGKILL)
    cluster.serving.discard(node_id)
    harness.poll(f"node {node_id} gone", lambda: os.path.exists(
        os.path.join(cluster.node_dir(node_id), "carelogd.exit")), EXIT_WAIT_S)


def main():
    args = harness.parse_args()
    work = harness.Workdir("acclog", args.keep)
    cluster = harness.Cluster(args, work.path, voters=3, learners=1)
    ok = False
    try:
        cluster.up()
        lead = cluster.wait_leader()
        learner = max(cluster.ids())
        check(cluster.status(learner)["role"] == "learner", f"node {learner} is the learner")
        patient = f"ctest-acclog-{args.seed % 100000:05d}"
        cluster.care([patient])
        rc, reply, err = cluster.append(lead, patient, "ctest access-log note: synthetic",
                                        f"acclog-{args.seed:x}-note")
        check(rc == 0, f"append: exit {rc}: {err}")
        cluster.wait_caught_up(learner, reply["index"])

        # 1. A read at the learner, seen at other nodes once shipped.
        purpose = f"acclog-learner-{args.seed:x}"
        t = time.monotonic()
        read(cluster, learner, patient, purpose)
        learner_org = cluster.nodes[learner]["org"]
        voters = [i for i in cluster.ids() if i != learner]
        at = voters[0]
        row = wait_row(cluster, at, "the learner's read", SHIP_WAIT_S, patient=patient,
                       actor=READER_ID, purpose=purpose)
        check(allowed(row) and row.get("action") == "read" and row.get("basis") == "relation" and
              row.get("org") == learner_org and row.get("role") == "physician" and
              row_node(row) == learner and row.get("count", 0) >= 1,
              f"the row at node {at}: {row}")
        check(row.get("shipped") is True, f"a row from another node came through the log: {row}")
        log(f"the learner's read (node {learner}, {learner_org}) is in the access log at node "
            f"{at} after {time.monotonic() - t:.2f} s")
        other = voters[1]
        harness.poll(f"the learner's read by actor at node {other}", lambda: find_row(
            access_log(cluster, other, actor_id=READER_ID, org=learner_org), patient=patient,
            purpose=purpose), SHIP_WAIT_S)
        log(f"access-log --actor {READER_ID} --org {learner_org} at node {other} finds it too")

        # 2. A read answered, then SIGKILL at once: the row survives.
        lead = cluster.wait_leader()
        victim = next(i for i in voters if i != lead)
        witness = next(i for i in voters if i not in (lead, victim))
        for attempt in range(1, KILL_TRIES + 1):
            purpose = f"acclog-kill-{args.seed:x}-{attempt}"
            read(cluster, victim, patient, purpose)
            sigkill_now(cluster, victim)
            log(f"attempt {attempt}: read answered at node {victim}, node SIGKILLed")
            # What the surviving voters have committed is all that was shipped before the kill.
            lead = cluster.wait_leader(among=[lead, witness])
            last = cluster.status(lead)["last_index"]
            harness.poll(f"leader {lead} committing its log up to {last}", lambda: (
                cluster.status(lead) or {}).get("commit_index", 0) >= last, SHIP_WAIT_S)
            cluster.wait_caught_up(witness, last, quiet=True)
            early = find_row(access_log(cluster, witness, patient=patient), purpose=purpose)
            cluster.start(victim)
            if early is None:
                break
            log(f"attempt {attempt}: the row was shipped before the kill (proves nothing); "
                "again")
        else:
            raise harness.TestFailure(f"in {KILL_TRIES} attempts every row was shipped before "
                                      "the kill: the test could not see the queue's durability")
        t = time.monotonic()
        row = wait_row(cluster, witness, "the row of the read answered just before SIGKILL",
                       SHIP_AFTER_RESTART_S, patient=patient, purpose=purpose)
        check(allowed(row) and row_node(row) == victim and row.get("actor") == READER_ID and
              row.get("action") == "read", f"the row: {row}")
        log(f"the row of the read answered before SIGKILL reached node {witness} "
            f"{time.monotonic() - t:.1f} s after node {victim} restarted")

        st = cluster.converge()
        for node_id in cluster.ids():
            rc, out = cluster.verify(node_id)
            check(rc == 0, f"verify on node {node_id} exited {rc}: {out[-2000:]}")
        log(f"verify ok on {len(st)} nodes")
        cluster.down()
        check(patient not in cluster.all_logs(), "node logs hold the patient id")
        ok = True
    finally:
        if not ok:
            cluster.destroy()
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
