#!/usr/bin/env python3
"""Acceptance 3: SIGKILL carelogd under concurrent appends; nothing acknowledged is lost.

Eight clients append with their own request ids and record every acknowledgement (index and
entry id). After a seeded number of acknowledgements the node is SIGKILLed mid-load and
restarted; every request that was not acknowledged is retried with the same request id until
it is, and a few acknowledged ones are re-sent (they must come back as duplicates of their first
entry). Then every acknowledged entry must be present with the same index and id, no request id
may appear twice, and `carelogctl verify` must pass.
"""

import random

import harness
from harness import check, log

CLIENTS = 8
KILL_AFTER_ACKS_MIN = 40     # the kill comes after a seeded number of acknowledgements
KILL_AFTER_ACKS_MAX = 400
REPLAYED_ACKED = 10          # acknowledged requests re-sent after the restart


def main():
    args = harness.parse_args()
    rng = random.Random(args.seed)
    kill_after = rng.randint(KILL_AFTER_ACKS_MIN, KILL_AFTER_ACKS_MAX)
    work = harness.Workdir("crash", args.keep)
    node = harness.Node(args, work.path)
    ok = False
    try:
        node.start()
        load = harness.AppendLoad(node, "crash", args.seed, CLIENTS)
        load.prepare()  # care relations: the clients append as a physician
        acked_at_kill = load.run_until(kill_after)
        rc = node.kill()
        log(f"SIGKILL after {acked_at_kill} acknowledgements (target {kill_after}); exit {rc}")
        check(acked_at_kill >= kill_after, "the load stopped before the kill point")
        load.finish()
        before = dict(load.acked)
        unacked = load.unacknowledged()
        log(f"requests={len(load.requests)} acknowledged={len(before)} "
            f"unacknowledged={len(unacked)} pending_replies={load.pending}")

        node.start()
        duplicates = load.retry(unacked)
        log(f"retried {len(unacked)}: {duplicates} had committed before the kill, "
            f"{len(unacked) - duplicates} appended now")

        # Exactly once across the crash: re-sending requests acknowledged before the kill must
        # return their first entry, not append a second.
        for rid in sorted(before)[:REPLAYED_ACKED]:
            patient, kind, body = load.requests[rid]
            rc, reply, err = node.append(patient, kind, body, request_id=rid)
            check(rc == 0 and reply["duplicate"] and reply["index"] == before[rid]["index"] and
                  reply["id"] == before[rid]["id"],
                  f"re-sent acknowledged request {rid}: exit {rc} {reply} {err}")

        problems = harness.check_acknowledged(node, load.acked)
        check(not problems, "after restart: " + "; ".join(problems[:10]))
        # The entry ids acknowledged before the kill resolve to the same index.
        for rid, a in list(before.items())[:50]:
            rc, entry, err = node.get(a["id"])
            check(rc == 0 and entry["index"] == a["index"], f"get {a['id']}: {rc} {err}")
        rc, out = node.verify()
        check(rc == 0, f"verify exited {rc}: {out}")
        node.stop()
        harness.assert_logs_clean(node, load.secrets())
        log(f"all {len(load.acked)} acknowledged entries present once, verify ok")
        ok = True
    finally:
        node.ensure_stopped()
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
