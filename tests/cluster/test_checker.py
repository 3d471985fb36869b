#!/usr/bin/env python3
"""Unit tests of the cluster suite's linearizability checker (tests/cluster/checker.py).

Hand-made histories it must reject (each with the rule that must name it) and accept, then a
seeded cross-check against a brute-force search (Wing & Gong: try every order that respects
real time) over many small random histories, valid ones made by a simulated correct system and
broken ones made by mutating them.
"""

import argparse
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402

P = "ctest-patient-1"
RANDOM_HISTORIES = 5000   # cross-checked against brute force
BRUTE_OPS_MAX = 9         # histories stay this small so brute force is instant


def app(value, start, end, result="ok", process="w1", patient=P, **kw):
    op = {"process": process, "type": "append", "patient": patient, "value": value,
          "start_s": start, "end_s": end, "result": result}
    op.update(kw)
    return op


def rd(values, start, end, process="r1", patient=P, result="ok", **kw):
    op = {"process": process, "type": "read", "patient": patient, "start_s": start,
          "end_s": end, "result": result}
    if result == "ok":
        op["read_value"] = list(values)
    op.update(kw)
    return op


class Reject(unittest.TestCase):
    def rejected(self, history, rule):
        res = checker.check(history)
        self.assertFalse(res.ok, "checker accepted a broken history")
        self.assertEqual(res.violations[0][0], rule, res.explain())
        # Rule 9 alone must reach the same verdict: rules 5-8 only explain.
        if rule not in ("duplicate", "unknown", "definite-fail", "order"):
            self.assertFalse(checker.check(history, explain=False).ok,
                             "the placement search accepted what a rule rejected")
        if rule != "definite-fail":  # brute force treats every failed append as optional
            self.assertFalse(brute_force(history), "brute force accepts it: a bad example")
        text = res.explain()
        self.assertIn("NOT linearizable", text)
        self.assertIn(P, text)
        return text

    def test_lost_acknowledged_append(self):
        text = self.rejected([
            app("a", 0, 1), app("b", 0.5, 1.5, process="w2"),
            rd(["a"], 2, 3),  # the final read: b, acknowledged at 1.5, is gone
        ], "lost")
        self.assertIn("'b'", text)

    def test_lost_without_any_read_holding_anything(self):
        self.rejected([app("a", 0, 1), rd([], 2, 3)], "lost")

    def test_stale_read_after_acknowledged_append(self):
        text = self.rejected([
            app("a", 0, 1),
            rd([], 2, 3, process="r1"),          # started after a was acknowledged
            rd(["a"], 4, 5, process="r2"),
        ], "stale")
        self.assertIn("r1", text)

    def test_two_readers_different_orders(self):
        text = self.rejected([
            app("a", 0, 10, process="w1"), app("b", 0, 10, process="w2"),
            rd(["a", "b"], 1, 9, process="r1"),
            rd(["b", "a"], 1, 9, process="r2"),
        ], "order")
        self.assertIn("different orders", text)

    def test_duplicate_in_read(self):
        self.rejected([app("a", 0, 1), rd(["a", "a"], 2, 3)], "duplicate")

    def test_duplicate_after_retry(self):
        # A retried pending append committed twice.
        self.rejected([app("a", 0, 5, result="pending"), app("b", 1, 2),
                       rd(["a", "b", "a"], 6, 7)], "duplicate")

    def test_unknown_element(self):
        self.rejected([app("a", 0, 1), rd(["a", "zz"], 2, 3)], "unknown")

    def test_element_of_other_patient(self):
        self.rejected([app("a", 0, 1, patient="ctest-other"), rd(["a"], 2, 3)], "unknown")

    def test_definite_fail_read(self):
        self.rejected([app("a", 0, 1, result="fail", definite=True), rd(["a"], 2, 3)],
                      "definite-fail")

    def test_read_from_the_future(self):
        self.rejected([rd(["a"], 0, 1), app("a", 2, 3)], "future")

    def test_non_monotonic_reads(self):
        self.rejected([
            app("a", 0, 10, result="pending"), app("b", 0, 10, result="pending"),
            rd(["a", "b"], 1, 2, process="r1"),
            rd(["a"], 3, 4, process="r2"),
        ], "non-monotonic")

    def test_real_time_append_order(self):
        self.rejected([app("a", 0, 1), app("b", 2, 3, process="w2"), rd(["b", "a"], 4, 5)],
                      "append-order")


class Accept(unittest.TestCase):
    def accepted(self, history):
        res = checker.check(history)
        self.assertTrue(res.ok, res.explain())
        self.assertTrue(checker.check(history, explain=False).ok)
        self.assertTrue(brute_force(history), "brute force rejects it: a bad example")

    def test_empty(self):
        self.accepted([])

    def test_concurrent_appends_either_order(self):
        for order in (["a", "b"], ["b", "a"]):
            self.accepted([app("a", 0, 2, process="w1"), app("b", 1, 3, process="w2"),
                           rd(order, 4, 5)])

    def test_read_concurrent_with_append_may_miss_it(self):
        self.accepted([app("a", 0, 2), rd([], 1, 3, process="r1"), rd(["a"], 1.5, 3.5,
                                                                      process="r2")])

    def test_pending_present(self):
        self.accepted([app("a", 0, 1), app("p", 0.5, 2, result="pending", process="w2"),
                       rd(["a", "p"], 3, 4)])

    def test_pending_absent(self):
        self.accepted([app("a", 0, 1), app("p", 0.5, 2, result="pending", process="w2"),
                       rd(["a"], 3, 4)])

    def test_pending_commits_after_client_gave_up(self):
        # The client stopped waiting at 2; the node committed it later: after b.
        self.accepted([app("p", 0, 2, result="pending"), app("b", 3, 4, process="w2"),
                       rd(["b", "p"], 5, 6)])

    def test_failed_append_may_have_happened(self):
        self.accepted([app("f", 0, 1, result="fail"), rd(["f"], 2, 3)])
        self.accepted([app("f", 0, 1, result="fail"), rd([], 2, 3)])

    def test_failed_and_pending_reads_ignored(self):
        self.accepted([app("a", 0, 1), rd(None, 2, 3, result="fail"),
                       rd(None, 2, 3, result="pending"), rd(["a"], 4, 5)])

    def test_local_reads_not_checked(self):
        self.accepted([app("a", 0, 1), rd([], 2, 3, consistency="local"), rd(["a"], 4, 5)])

    def test_patients_independent(self):
        self.accepted([app("a", 0, 1), app("x", 0, 1, patient="ctest-other"),
                       rd(["a"], 2, 3), rd(["x"], 2, 3, patient="ctest-other")])

    def test_malformed_history_is_an_error_not_a_verdict(self):
        with self.assertRaises(checker.HistoryError):
            checker.check([app("a", 0, 1), app("a", 2, 3)])
        with self.assertRaises(checker.HistoryError):
            checker.check([{"type": "append", "patient": P, "value": "a", "start_s": 0,
                            "result": "ok"}])


# ------------------------------------------------------------------ brute force cross-check

def brute_force(history):
    """True iff some order of the effective ops respects real time and every read's value.

    Wing & Gong: repeatedly linearize an op no other remaining op must precede. Non-ok appends
    are optional (they may never take effect); failed and pending reads are dropped."""
    ops = [op for op in history if op["type"] == "append" or
           (op["result"] == "ok" and op.get("consistency", "linearizable") == "linearizable")]
    patients = {op["patient"] for op in ops}
    for p in patients:
        mine = [op for op in ops if op["patient"] == p]
        if not _bf(mine, frozenset(range(len(mine))), (), {}):
            return False
    return True


def _end(op):
    if op["type"] == "append" and op["result"] != "ok":
        return float("inf")
    return op["end_s"]


def _bf(ops, remaining, state, memo):
    key = (remaining, state)
    if key in memo:
        return memo[key]
    mandatory = [i for i in remaining if ops[i]["result"] == "ok"]
    if not mandatory:
        memo[key] = True
        return True
    ok = False
    for i in remaining:
        op = ops[i]
        # i may go next only if no remaining mandatory op ended before it started.
        if any(_end(ops[j]) < op["start_s"] for j in remaining if j != i and
               ops[j]["result"] == "ok"):
            continue
        rest = remaining - {i}
        if op["type"] == "append":
            ok = _bf(ops, rest, state + (op["value"],), memo)
        elif tuple(op["read_value"]) == state:
            ok = _bf(ops, rest, state, memo)
        if ok:
            break
    if not ok:
        # Optional ops (non-ok appends) may also never happen.
        optional = [i for i in remaining if ops[i]["result"] != "ok"]
        if optional:
            ok = _bf(ops, remaining - set(optional), state, memo)
    memo[key] = ok
    return ok


def random_history(rng):
    """A history from a simulated correct register, optionally broken by one mutation."""
    n_ops = rng.randint(1, BRUTE_OPS_MAX)
    t = 0.0
    log = []         # committed values
    history = []
    for k in range(n_ops):
        start = t + rng.random()
        dur = rng.random() * 3
        end = start + dur
        point = start + rng.random() * dur
        if rng.random() < 0.5:
            value = f"v{k}"
            result = rng.choice(["ok", "ok", "ok", "pending", "fail"])
            takes_effect = result == "ok" or rng.random() < 0.5
            op = app(value, start, end, result=result, process=f"w{k}")
            op["_point"] = point if takes_effect else None
            if result != "ok" and takes_effect:
                op["_point"] = start + rng.random() * 6  # may land after the client gave up
        else:
            op = rd([], start, end, process=f"r{k}",
                    result=rng.choice(["ok", "ok", "ok", "fail"]))
            op["_point"] = point
        history.append(op)
        t = start if rng.random() < 0.7 else end  # overlap often
    # Play the effects in point order.
    for op in sorted((o for o in history if o["_point"] is not None), key=lambda o: o["_point"]):
        if op["type"] == "append":
            log.append(op["value"])
        elif op["result"] == "ok":
            op["read_value"] = list(log)
    for op in history:
        del op["_point"]
    if rng.random() < 0.7:
        mutate(rng, history)
    return history


def mutate(rng, history):
    reads = [op for op in history if op["type"] == "read" and op["result"] == "ok"]
    appends = [op for op in history if op["type"] == "append"]
    kind = rng.randrange(5)
    if kind == 0 and reads:                      # drop an element from a read
        r = rng.choice(reads)
        if r["read_value"]:
            del r["read_value"][rng.randrange(len(r["read_value"]))]
    elif kind == 1 and reads:                    # swap two neighbours
        r = rng.choice(reads)
        if len(r["read_value"]) >= 2:
            i = rng.randrange(len(r["read_value"]) - 1)
            r["read_value"][i], r["read_value"][i + 1] = r["read_value"][i + 1], r["read_value"][i]
    elif kind == 2 and reads and appends:        # a read gains an element
        r = rng.choice(reads)
        v = rng.choice(appends)["value"]
        if v not in r["read_value"]:
            r["read_value"].insert(rng.randint(0, len(r["read_value"])), v)
    elif kind == 3 and appends:                  # a pending append turns acknowledged
        a = rng.choice(appends)
        a["result"] = "ok"
    elif kind == 4 and reads:                    # a read is truncated
        r = rng.choice(reads)
        r["read_value"] = r["read_value"][:rng.randint(0, len(r["read_value"]))]


class CrossCheck(unittest.TestCase):
    seed = None

    def test_matches_brute_force(self):
        rng = random.Random(self.seed)
        counts = {True: 0, False: 0}
        for n in range(RANDOM_HISTORIES):
            h = random_history(rng)
            want = brute_force(h)
            got = checker.check(h)
            got_place = checker.check(h, explain=False)
            counts[want] += 1
            self.assertEqual(got.ok, want, f"history #{n} (seed {self.seed}): brute force says "
                             f"{want}, checker says:\n{got.explain()}\n{h}")
            self.assertEqual(got_place.ok, want, f"history #{n}: placement alone disagrees\n{h}")
        print(f"cross-check: {counts[True]} linearizable, {counts[False]} not", flush=True)
        self.assertGreater(counts[True], RANDOM_HISTORIES // 10)
        self.assertGreater(counts[False], RANDOM_HISTORIES // 20)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=None)
    args, rest = p.parse_known_args()
    seed = args.seed
    if seed is None:
        env = os.environ.get("CARELOG_SEED")
        seed = int(env) if env else random.SystemRandom().randrange(1 << 31)
    print(f"seed={seed} (rerun with --seed {seed} or CARELOG_SEED={seed})", flush=True)
    CrossCheck.seed = seed
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
