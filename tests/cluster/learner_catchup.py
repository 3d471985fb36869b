#!/usr/bin/env python3
"""Add a learner to a region that already holds many entries; it catches up and serves.

Three voters are loaded with --entries entries for one bulk patient through `carelogctl bench
append` on the leader, as a physician with a care relation (5,000 in the cluster suite,
100,000 in the slow suite). Then, under
write and read load, `deploy/local-cluster add-learner` starts an empty node with the same
genesis, adds it with `carelogctl member add-learner` on the leader and waits until it has
applied the leader's commit index. The learner must report role learner and be listed as a
learner by the leader; it then takes part in the load (its appends are forwarded to the
leader, its linearizable reads go through the leader's read index and are judged by the
checker like all others, so each must hold every append acknowledged before it started); its
organisation gets its care relations before it serves. Its timeline of the bulk patient must
hold all the entries. Then the checks every test ends with.
"""

import json
import time

import harness
from harness import check, log

BULK_CLIENTS = 8
BULK_BODY_BYTES = 256
ACK_WAIT_S = 60
ACKS_AFTER_JOIN = 20
LEARNER_READS = 6


def main():
    args = harness.parse_args(lambda p: p.add_argument("--entries", type=int, default=5000))
    work = harness.Workdir("learner", args.keep)
    cluster = harness.Cluster(args, work.path, voters=3)
    history = harness.History()
    ok = False
    try:
        cluster.up()
        lead = cluster.wait_leader()
        bulk = f"ctest-bulk-{args.seed % 100000:05d}"
        cluster.care([bulk])  # every organisation; the learner's gets it when it joins
        t = time.monotonic()
        r = cluster.ctl(lead, ["--actor", harness.CLINICIAN, "bench", "append",
                               "--clients", str(BULK_CLIENTS), "--count", str(args.entries),
                               "--body-bytes", str(BULK_BODY_BYTES), "--patient", bulk,
                               "--json"],
                        timeout_s=30, run_s=600 * harness.scale())
        check(r.returncode == 0, f"bench append exited {r.returncode}: {r.stderr}")
        bench = json.loads(r.stdout.strip().splitlines()[-1])
        check(bench.get("errors", 0) == 0, f"bench append: {bench}")
        log(f"{args.entries} bulk entries in {time.monotonic() - t:.1f} s "
            f"({bench.get('ops_per_s')} appends/s)")

        load = harness.Workload(cluster, history, args.seed, "learner").start()
        load.extra_secrets.add(bulk)
        load.wait_acks(10, ACK_WAIT_S)
        commit = cluster.status(cluster.wait_leader())["commit_index"]
        learner = cluster.add_learner(timeout_s=max(120, args.entries / 100))
        s = cluster.status(learner)
        check(s["role"] == "learner", f"node {learner} reports role {s['role']}, not learner")
        check(s["applied_index"] >= commit, f"learner applied {s['applied_index']} < {commit}")
        lead = cluster.wait_leader()
        m = [m for m in cluster.status(lead)["members"] if m["id"] == learner]
        check(m and m[0]["role"] == "learner", f"leader {lead} lists node {learner} as {m}")

        # Linearizable reads on the learner hold every append acknowledged before they began
        # (the checker judges them); its own appends are forwarded and acknowledged.
        for n in range(LEARNER_READS):
            load.read_once(learner, load.patients[n % len(load.patients)],
                           process=f"learner@{learner}", must_succeed=True)
        for n in range(3):
            rid = f"learner-{args.seed:x}-via-learner-{n}"
            body = f"ctest learner body via learner {n}: synthetic observation"
            load.bodies.add(body)
            op = history.begin("append", load.patients[n], f"via@{learner}", value=rid,
                               body=body, attempts=0, node=learner)
            check(load.drive_append(op, None, give_up_at=harness.deadline(ACK_WAIT_S)),
                  f"append {rid} through learner {learner} not acknowledged")
        load.wait_acks(ACKS_AFTER_JOIN, ACK_WAIT_S, since=time.monotonic(),
                       what="acknowledgements with the learner serving")

        def bulk_count():
            rc, entries, info = cluster.read(learner, bulk, "local", timeout_s=30)
            return rc == 0 and len(entries) == args.entries
        harness.poll(f"{args.entries} bulk entries on learner {learner}", bulk_count, 60)
        log(f"learner {learner} serves all {args.entries} bulk entries")
        cluster.final_checks(load, history, work.path)
        ok = True
    finally:
        if not ok:
            cluster.destroy()
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
