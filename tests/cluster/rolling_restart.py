#!/usr/bin/env python3
"""Restart every node in turn under load (a rolling upgrade), leader included.

Three voters under write and linearizable read load. In a seeded order each node is stopped
with SIGTERM (it must exit 0), the other two keep committing without it, it is started again
and must catch up with the leader's commit index before the next node goes. Then the checks
every test ends with.
"""

import random
import time

import harness
from harness import log

ACKS_WHILE_DOWN = 10
ACKS_AFTER = 5
ACK_WAIT_S = 60


def main():
    args = harness.parse_args()
    rng = random.Random(args.seed)
    work = harness.Workdir("roll", args.keep)
    cluster = harness.Cluster(args, work.path, voters=3)
    history = harness.History()
    ok = False
    try:
        cluster.up()
        load = harness.Workload(cluster, history, args.seed, "roll").start()
        load.wait_acks(10, ACK_WAIT_S)
        order = cluster.ids()
        rng.shuffle(order)
        log(f"restart order: {order}")
        for node in order:
            lead = cluster.wait_leader()
            log(f"restarting node {node} ({'the leader' if node == lead else 'a follower'})")
            cluster.stop(node)
            t = time.monotonic()
            load.wait_acks(ACKS_WHILE_DOWN, ACK_WAIT_S, since=t,
                           what=f"acknowledgements while node {node} is down")
            cluster.start(node)
            lead = cluster.wait_leader()
            cluster.wait_caught_up(node, cluster.status(lead)["commit_index"])
            load.wait_acks(ACKS_AFTER, ACK_WAIT_S, since=time.monotonic(),
                           what=f"acknowledgements after node {node} is back")
        cluster.final_checks(load, history, work.path)
        ok = True
    finally:
        if not ok:
            cluster.destroy()
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
