#!/usr/bin/env python3
"""Isolate the leader through the relay; the majority moves on, the old leader never serves stale.

Three voters whose peer traffic all goes through tests/tools/relay.py (one route per ordered
pair, set by `[peers]` in each node's config). First the relay must show traffic on every
route, proving the overrides are in force. Under load, the leader is isolated (every route to
and from it cut): the other two must elect a new leader within NEW_LEADER_S and keep
committing. Meanwhile linearizable reads on the isolated old leader must fail (exit 1 or 3),
never answer; its appends must not be acknowledged. After heal-all the old leader catches up.
Then a one-way cut (a follower can send to the leader but hears nothing back) must not stop
commits either. Then the checks every test ends with (which judge every read, including any
the isolated node answered).
"""

import random
import time

import harness
from harness import check, log

NEW_LEADER_S = 10
ACKS_DURING = 15
ACK_WAIT_S = 60
ISOLATED_READS = 4          # linearizable reads tried on the isolated node
ISOLATED_READ_TIMEOUT_S = 3


def main():
    args = harness.parse_args()
    rng = random.Random(args.seed)
    work = harness.Workdir("part", args.keep)
    cluster = harness.Cluster(args, work.path, voters=3, relay=True)
    history = harness.History()
    ok = False
    try:
        cluster.up()

        def all_routes_used():
            routes = cluster.relay_status()["routes"]
            return all(r["bytes_forward"] > 0 for r in routes) and routes
        routes = harness.poll("traffic on every relay route", all_routes_used, 30)
        log(f"relay: {len(routes)} routes, all carrying traffic")

        load = harness.Workload(cluster, history, args.seed, "part").start()
        load.wait_acks(rng.randint(10, 30), ACK_WAIT_S)
        old = cluster.wait_leader()
        before = cluster.status(old)
        cluster.isolate(old)
        t = time.monotonic()
        others = [i for i in cluster.ids() if i != old]
        new = cluster.wait_leader(NEW_LEADER_S, among=others)
        s = cluster.status(new)
        check(s["term"] > before["term"], f"new leader {new} in term {s['term']}, not above "
              f"{before['term']}")
        log(f"isolated leader {old}; node {new} leads term {s['term']} after "
            f"{time.monotonic() - t:.2f} s")
        load.wait_acks(ACKS_DURING, ACK_WAIT_S, since=t,
                       what="acknowledgements by the majority")

        # The isolated node: linearizable reads fail, appends are not acknowledged.
        for n in range(ISOLATED_READS):
            patient = load.patients[n % len(load.patients)]
            rc, entries = load.read_once(old, patient, process=f"isolated@{old}",
                                         timeout_s=ISOLATED_READ_TIMEOUT_S)
            check(rc != 0, f"isolated node {old} answered a linearizable read "
                  f"({len(entries or [])} entries) while the majority moved on")
        rid = f"part-{args.seed:x}-isolated"
        op = history.begin("append", load.patients[0], f"isolated@{old}", value=rid,
                           body="ctest part body isolated: synthetic observation", attempts=1,
                           node=old)
        load.bodies.add(op["body"])
        rc, reply, err = cluster.append(old, op["patient"], op["body"], rid,
                                        timeout_s=ISOLATED_READ_TIMEOUT_S)
        check(rc != 0, f"isolated node {old} acknowledged append {rid}: {reply}")
        history.finish(op, "pending", last_error=err)  # may commit after the heal
        log(f"isolated node {old}: {ISOLATED_READS} linearizable reads refused, append exit "
            f"{rc} ({err[-120:]})")
        rc, entries, info = cluster.read(old, load.patients[0], "local")
        if rc == 0:
            log(f"isolated node {old}: local read served at applied index "
                f"{info['applied_index']}, lag {info['lag']}, stale {info['stale']}")

        cluster.heal_all()
        lead = cluster.wait_leader(30)
        cluster.wait_caught_up(old, cluster.status(lead)["commit_index"])
        load.wait_acks(5, ACK_WAIT_S, since=time.monotonic(), what="acknowledgements after heal")

        # A one-way cut: a follower still reaches the leader, but hears nothing back. The
        # leader and the other follower are a quorum and keep committing.
        follower = rng.choice([i for i in cluster.ids() if i != lead])
        cluster.cut(lead, follower)
        cluster.serving.discard(follower)  # new appends go elsewhere; retries stay there
        t = time.monotonic()
        load.wait_acks(ACKS_DURING, ACK_WAIT_S, since=t,
                       what=f"acknowledgements with {lead}->{follower} cut")
        cluster.heal_all()
        lead = cluster.wait_leader(30)
        cluster.wait_caught_up(follower, cluster.status(lead)["commit_index"])
        load.wait_acks(5, ACK_WAIT_S, since=time.monotonic(), what="acknowledgements after heal")
        cluster.final_checks(load, history, work.path)
        ok = True
    finally:
        if not ok:
            cluster.destroy()
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
