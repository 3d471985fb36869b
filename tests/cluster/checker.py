#!/usr/bin/env python3
"""Linearizability checker for per-patient list-append histories of the cluster tests.

A history is a list of operations (dicts), one per logical client operation:

    process   who ran it (a writer or reader thread name); informational
    type      "append" | "read"
    patient   the patient id: each patient's timeline is an independent list
    value     append only: the request id; unique across the whole history
    start_s   when the client started the operation (its first try), monotonic seconds
    end_s     when it learned the outcome (None or missing: never)
    result    "ok" | "pending" | "fail"
    read_value  ok reads only: the request ids of the patient's entries in index order
    consistency  reads only, optional: "linearizable" (default) or "local"; only
              linearizable reads are checked, local ones are skipped
    definite  appends only, optional: True when a "fail" is known to have appended nothing

How results are read:
  - append "ok": acknowledged (committed); it took effect once, at some point between start_s
    and end_s.
  - append "pending": outcome unknown; it may take effect at any point after start_s (even
    after end_s: the node may still commit it) or never.
  - append "fail": treated exactly like "pending" (a failed carelogctl run may have reached the
    leader before the connection broke), unless definite is True: then it must never be read.
  - read "ok": the patient's timeline as of one point between start_s and end_s. Reads that
    failed or timed out tell nothing and are ignored.

The history is linearizable per patient iff there is one total order of the appends that took
effect and a point in time for each effective operation, inside its interval, such that every
ok read returns exactly the appends ordered before it. The checker reports the first violation
it finds with an explanation, trying the specific rules first (they explain better):

  1. duplicate      a request id appears twice in one read
  2. unknown        a read holds a request id never attempted for that patient
  3. definite-fail  a read holds an append that definitely failed
  4. order          two ok reads are not prefixes of one order (they disagree)
  5. future         a read holds an append that started only after the read ended
  6. stale / lost   a read misses an acknowledged append that ended before the read started
                    (called "lost" when no later read holds it either)
  7. non-monotonic  a read that started after another read ended is shorter
  8. append-order   append a was acknowledged before append b started, yet b precedes a
  9. placement      the exact search for linearization points fails (catches combinations
                    the rules above do not name)

Rule 9 alone decides; rules 1-8 only explain. The search is exact and polynomial because ok
reads return whole timelines: the longest read fixes the order of every append that was read,
reads of length k sit between the k-th and (k+1)-th append, and appends that no read holds
(acknowledged ones) go after all of them; earliest-point greedy placement then decides.

Usage as a program: checker.py HISTORY.json  (a JSON list of operations, or {"ops": [...]});
exit 0 linearizable, 1 violation (explained on stdout), 2 bad input.
"""

import json
import math
import sys

INF = math.inf
SHOW_MAX = 6  # elements shown around a point of interest in explanations


class HistoryError(Exception):
    """The history itself is malformed (not a verdict about the system)."""


class Result:
    def __init__(self):
        self.violations = []  # (rule, patient, explanation)
        self.patients = 0
        self.appends = 0
        self.reads = 0
        self.skipped_reads = 0

    @property
    def ok(self):
        return not self.violations

    def add(self, rule, patient, text):
        self.violations.append((rule, patient, text))

    def explain(self):
        head = (f"checked {self.patients} patients, {self.appends} appends, {self.reads} "
                f"linearizable ok reads ({self.skipped_reads} other reads skipped)")
        if self.ok:
            return head + ": linearizable"
        rule, patient, text = self.violations[0]
        more = len(self.violations) - 1
        tail = f"\n({more} further violations not shown)" if more else ""
        return f"{head}: NOT linearizable\nfirst violation [{rule}] patient {patient}:\n{text}{tail}"


def _fmt_t(t):
    return "never" if t is None or t == INF else f"{t:.3f}s"


def _fmt_op(op):
    if op["type"] == "append":
        return (f"append {op['value']!r} by {op.get('process', '?')} "
                f"[{_fmt_t(op['start_s'])} .. {_fmt_t(op.get('end_s'))}] result {op['result']}")
    return (f"read by {op.get('process', '?')} [{_fmt_t(op['start_s'])} .. "
            f"{_fmt_t(op.get('end_s'))}] of {len(op['read_value'])} entries")


def _fmt_list(values, around=None):
    if around is None or len(values) <= 2 * SHOW_MAX:
        shown = values if len(values) <= 2 * SHOW_MAX else values[-2 * SHOW_MAX:]
        prefix = "" if len(shown) == len(values) else "..., "
        return "[" + prefix + ", ".join(repr(v) for v in shown) + "]"
    lo = max(0, around - SHOW_MAX)
    hi = min(len(values), around + SHOW_MAX)
    return ("[" + ("..., " if lo > 0 else "") + ", ".join(f"#{i}:{values[i]!r}" for i in range(lo, hi))
            + (", ..." if hi < len(values) else "") + "]")


def _validate(history):
    seen_values = {}
    for n, op in enumerate(history):
        if not isinstance(op, dict):
            raise HistoryError(f"op #{n} is not an object")
        for key in ("type", "patient", "start_s", "result"):
            if key not in op:
                raise HistoryError(f"op #{n} has no {key!r}: {op}")
        if op["type"] not in ("append", "read"):
            raise HistoryError(f"op #{n}: unknown type {op['type']!r}")
        if op["result"] not in ("ok", "pending", "fail"):
            raise HistoryError(f"op #{n}: unknown result {op['result']!r}")
        end = op.get("end_s")
        if op["result"] == "ok" and end is None:
            raise HistoryError(f"op #{n}: an ok op needs end_s")
        if end is not None and end < op["start_s"]:
            raise HistoryError(f"op #{n}: end_s before start_s")
        if op["type"] == "append":
            v = op.get("value")
            if v is None:
                raise HistoryError(f"op #{n}: append without value")
            if v in seen_values:
                raise HistoryError(f"op #{n}: value {v!r} appended by two ops (#{seen_values[v]})")
            seen_values[v] = n
        elif op["result"] == "ok" and not isinstance(op.get("read_value"), list):
            raise HistoryError(f"op #{n}: ok read without a read_value list")


def check(history, explain=True):
    """Checks a whole history; returns a Result (result.ok, result.explain()).

    explain=False skips rules 5-8 (their verdict is implied by rule 9; tests use it to check
    that rule 9 alone decides)."""
    _validate(history)
    res = Result()
    by_patient = {}
    for op in history:
        by_patient.setdefault(op["patient"], []).append(op)
    res.patients = len(by_patient)
    for patient in sorted(by_patient, key=str):
        _check_patient(patient, by_patient[patient], res, explain)
    return res


def _check_patient(patient, ops, res, explain):
    appends = {}
    for op in ops:
        if op["type"] == "append":
            appends[op["value"]] = op
    res.appends += len(appends)
    reads = []
    for op in ops:
        if op["type"] != "read":
            continue
        if op.get("consistency", "linearizable") != "linearizable" or op["result"] != "ok":
            res.skipped_reads += 1
            continue
        reads.append(op)
    res.reads += len(reads)

    before = len(res.violations)

    # 1-3: each read on its own.
    for r in reads:
        seen = {}
        for i, v in enumerate(r["read_value"]):
            if v in seen:
                res.add("duplicate", patient,
                        f"{_fmt_op(r)} holds {v!r} twice (positions {seen[v]} and {i}): "
                        f"{_fmt_list(r['read_value'], i)}")
                break
            seen[v] = i
            a = appends.get(v)
            if a is None:
                res.add("unknown", patient,
                        f"{_fmt_op(r)} holds {v!r} at position {i}, which no client appended "
                        f"for this patient")
                break
            if a["result"] == "fail" and a.get("definite"):
                res.add("definite-fail", patient,
                        f"{_fmt_op(r)} holds {v!r} at position {i}, but {_fmt_op(a)} was "
                        f"refused with nothing appended")
                break
    if len(res.violations) > before:
        return

    # 4: every ok read is a prefix of the longest one.
    longest = max(reads, key=lambda r: len(r["read_value"]), default=None)
    order = longest["read_value"] if longest else []
    for r in reads:
        rv = r["read_value"]
        for i, v in enumerate(rv):
            if order[i] != v:
                res.add("order", patient,
                        f"two readers saw different orders:\n  {_fmt_op(r)}: "
                        f"{_fmt_list(rv, i)}\n  {_fmt_op(longest)}: {_fmt_list(order, i)}\n"
                        f"  they agree up to position {i - 1} and differ at position {i} "
                        f"({v!r} vs {order[i]!r})")
                return
    pos = {v: i for i, v in enumerate(order)}

    if explain and _explain_rules(patient, appends, reads, order, pos, res):
        return
    _place(patient, appends, reads, order, pos, res)


def _hi(a):
    """The latest point an append may take effect."""
    return a["end_s"] if a["result"] == "ok" else INF


def _explain_rules(patient, appends, reads, order, pos, res):
    """Rules 5-8; True when one of them found a violation (recorded in res)."""
    hi = _hi
    # 5: a read holds only appends that had started before it ended.
    for r in reads:
        for i, v in enumerate(r["read_value"]):
            a = appends[v]
            if r["end_s"] < a["start_s"]:
                res.add("future", patient,
                        f"{_fmt_op(r)} holds {v!r} (position {i}), but {_fmt_op(a)} started "
                        f"only after the read ended")
                return True

    # 6: a read that started after an acknowledged append ended holds it.
    acked = sorted((a for a in appends.values() if a["result"] == "ok"), key=lambda a: a["end_s"])
    for r in sorted(reads, key=lambda r: r["start_s"]):
        held = set(r["read_value"])
        for a in acked:
            if a["end_s"] >= r["start_s"]:
                break
            if a["value"] not in held:
                later = [q for q in reads if q["start_s"] > r["start_s"] and a["value"] in
                         set(q["read_value"])]
                if a["value"] not in pos and not later:
                    res.add("lost", patient,
                            f"acknowledged {_fmt_op(a)} is missing from every read; "
                            f"{_fmt_op(r)} started after it was acknowledged: "
                            f"{_fmt_list(r['read_value'])}")
                else:
                    res.add("stale", patient,
                            f"{_fmt_op(r)} misses {a['value']!r}, acknowledged before the read "
                            f"started ({_fmt_op(a)}); the read returned "
                            f"{_fmt_list(r['read_value'])}")
                return True

    # 7: reads are monotonic in real time.
    by_end = sorted(reads, key=lambda r: r["end_s"])
    for r2 in reads:
        for r1 in by_end:
            if r1["end_s"] >= r2["start_s"]:
                break
            if len(r2["read_value"]) < len(r1["read_value"]):
                res.add("non-monotonic", patient,
                        f"{_fmt_op(r2)} started after {_fmt_op(r1)} ended, yet returned fewer "
                        f"entries ({len(r2['read_value'])} < {len(r1['read_value'])})")
                return True

    # 8: appends ordered in real time appear in that order.
    # Scanning the order from the back: the earliest acknowledgement among later elements.
    min_hi, min_hi_value = INF, None
    for i in range(len(order) - 1, -1, -1):
        a = appends[order[i]]
        if min_hi < a["start_s"]:
            b = appends[min_hi_value]
            res.add("append-order", patient,
                    f"{_fmt_op(b)} was acknowledged before {_fmt_op(a)} started, yet "
                    f"{a['value']!r} is at position {i} and {b['value']!r} at position "
                    f"{pos[b['value']]}: {_fmt_list(order, i)}")
            return True
        if hi(a) < min_hi:
            min_hi, min_hi_value = hi(a), a["value"]
    return False


def _place(patient, appends, reads, order, pos, res):
    """Rule 9: exact placement of linearization points, earliest first."""
    hi = _hi
    acked = [a for a in appends.values() if a["result"] == "ok"]
    groups = {}
    for r in reads:
        groups.setdefault(len(r["read_value"]), []).append(r)
    t = -INF
    last_placed = None
    for k in range(len(order) + 1):
        t_after = t
        for r in groups.get(k, []):
            p = max(t, r["start_s"])
            if p > r["end_s"]:
                res.add("placement", patient,
                        f"{_fmt_op(r)} returned {k} entries, but the {k}th "
                        f"({last_placed!r}) can take effect no earlier than {_fmt_t(t)}, after "
                        f"the read ended")
                return
            t_after = max(t_after, p)
        if k == len(order):
            t = t_after
            break
        a = appends[order[k]]
        p = max(t_after, a["start_s"])
        if p > hi(a):
            res.add("placement", patient,
                    f"{_fmt_op(a)} is at position {k}, but the reads and appends ordered before "
                    f"it force its point to {_fmt_t(p)} or later, after it was acknowledged")
            return
        t = p
        last_placed = order[k]
    # Acknowledged appends no read holds take effect after everything that was read.
    for a in sorted((a for a in acked if a["value"] not in pos), key=lambda a: a["start_s"]):
        p = max(t, a["start_s"])
        if p > a["end_s"]:
            res.add("lost", patient,
                    f"acknowledged {_fmt_op(a)} is in no read, yet reads that must follow it "
                    f"(the longest read, {len(order)} entries, is placed at {_fmt_t(t)}) "
                    f"do not hold it")
            return
        t = p


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.split("Usage as a program:")[1].strip(), file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            data = json.load(f)
        history = data["ops"] if isinstance(data, dict) else data
        res = check(history)
    except (OSError, ValueError, KeyError, HistoryError) as e:
        print(f"checker: {e}", file=sys.stderr)
        return 2
    print(res.explain())
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
