#!/usr/bin/env python3
"""Benchmarks of one real node (run by `meson test --benchmark`; figures in BENCHMARKS.md).

  bench.py append --clients N --count M --body-bytes B
      committed, synced, signed appends through `carelogctl bench append` on a fresh node
  bench.py read --fill N --patient-entries E --iterations I
      fills a fresh node with N entries (`carelogctl bench append --clients 64`, timed), with
      one patient's E entries spread through the fill, then measures that patient's timeline
      read latency over I reads through libcarelog (tests/bench/read_latency)
  bench.py audit --carelogd-unaudited D --patients P --patient-entries E --readers R
                 --reads N [--repeat K]
      audited against unaudited timeline reads: for each of K repeats, a fresh node of the
      normal carelogd and a fresh node of D (the bench-only build without audit rows,
      tests/bench/meson.build) each get P patients of E entries of 512 bytes, then R readers
      sharing one client read whole timelines N times (tests/bench/read_latency readers);
      prints one JSON line per run and a summary line (ranges, audited / unaudited per repeat)

The node denies by default (docs/access.md): every benchmark first adds care relations for its
patients as bench-admin (role admin) and appends and reads as bench-clinician (physician).
Every request is audited in the normal carelogd (a row durable before the reply).
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import check, log  # noqa: E402

FILL_SEGMENTS = 10        # the patient's entries go in between these slices of the fill
FILL_CLIENTS = 64
FILL_BODY_BYTES = 1024
PATIENT = "bench-patient-000001"
BULK_PATIENT = "bench-patient"  # carelogctl bench append's default patient
BENCH_TIMEOUT_S = 3 * 3600
ADMIN = "bench-admin:admin"
CLINICIAN = "bench-clinician:physician"
AUDITOR = "bench-auditor:auditor"
READ_PREFIX = "bench-reader"    # audit mode: patients bench-reader-000001..
READ_BODY_BYTES = 512
FILL_THREADS = 16
WARMUP_READS_PER_READER = 20


def bench_append(node, clients, count, body_bytes):
    r = node.ctl(["--actor", CLINICIAN, "bench", "append", "--clients", str(clients),
                  "--count", str(count), "--body-bytes", str(body_bytes), "--json"],
                 timeout_s=BENCH_TIMEOUT_S)
    result = json.loads(r.stdout)
    check(result.get("errors", 0) == 0, f"bench append reported errors: {result}")
    return result


def care(node, patients):
    """Care relations for the benchmark's patients, as ADMIN."""
    node.care(patients, admin=ADMIN)


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_run(args, work, name, binary):
    """One audit-mode run on a fresh node started from `binary`; returns the readers' JSON."""
    node = harness.Node(args, os.path.join(work, name))
    try:
        node.start(binary=binary)
        patients = [f"{READ_PREFIX}-{p + 1:06d}" for p in range(args.patients)]
        care(node, patients)
        tool = [args.read_latency, "--actor", CLINICIAN.split(":")[0], "--role",
                CLINICIAN.split(":")[1], node.endpoint]
        subprocess.run(tool + ["fill", READ_PREFIX, str(args.patients),
                               str(args.patient_entries), str(READ_BODY_BYTES),
                               str(FILL_THREADS)], check=True, timeout=BENCH_TIMEOUT_S)
        readers = tool + ["readers", READ_PREFIX, str(args.patients), str(args.patient_entries),
                          str(args.readers)]
        subprocess.run(readers + [str(args.readers * WARMUP_READS_PER_READER)], check=True,
                       capture_output=True, timeout=BENCH_TIMEOUT_S)
        load_before = loadavg()
        before = json.loads(node.ctl(["status", "--json"]).stdout)
        r = subprocess.run(readers + [str(args.reads)], capture_output=True, text=True,
                           timeout=BENCH_TIMEOUT_S)
        check(r.returncode == 0, f"read_latency readers failed: {r.stderr}")
        result = json.loads(r.stdout)
        status = json.loads(node.ctl(["status", "--json"]).stdout)
        # Log entries appended while the readers ran: the audit batches (none unaudited).
        result["log_entries_during"] = status["applied_index"] - before["applied_index"]
        audited = binary == args.carelogd
        # The build must be what it claims: rows about a patient read above exist only when
        # requests are audited.
        r = node.ctl(["--actor", AUDITOR, "access-log", "--patient", patients[0], "--json"])
        rows = len(json.loads(r.stdout)["rows"])
        check(rows > 0 if audited else rows == 0,
              f"{name}: {rows} access-log rows for a patient read "
              f"{args.reads // args.patients}+ times: the build is not what it claims")
        result.update(run=name, audited=audited, patients=args.patients,
                      body_bytes=READ_BODY_BYTES, load_before=load_before,
                      applied_index=status["applied_index"], audit_rows_one_patient=rows)
        node.stop()
        return result
    finally:
        node.ensure_stopped()


def spread(values, fmt="{:,.0f}"):
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)} - {fmt.format(hi)}"


def audit_compare(args, work):
    """Audited and unaudited runs, interleaved per repeat so machine noise hits both alike."""
    check(args.read_latency and args.carelogd_unaudited,
          "audit mode needs --read-latency and --carelogd-unaudited")
    unaudited = os.path.abspath(args.carelogd_unaudited)
    runs = []
    for k in range(args.repeat):
        for name, binary in (("audited", args.carelogd), ("unaudited", unaudited)):
            result = read_run(args, work, f"{name}-{k + 1}", binary)
            log(json.dumps(result))
            runs.append(result)
    aud = [r for r in runs if r["audited"]]
    una = [r for r in runs if not r["audited"]]
    ratios = [a["reads_per_s"] / u["reads_per_s"] for a, u in zip(aud, una)]
    summary = {"nproc": os.cpu_count(), "readers": args.readers, "patients": args.patients,
               "entries_per_read": args.patient_entries, "reads": args.reads,
               "repeats": args.repeat,
               "audited_reads_per_s": spread([r["reads_per_s"] for r in aud]),
               "audited_p50_ms": spread([r["p50_ms"] for r in aud], "{:.2f}"),
               "audited_p99_ms": spread([r["p99_ms"] for r in aud], "{:.2f}"),
               "unaudited_reads_per_s": spread([r["reads_per_s"] for r in una]),
               "unaudited_p50_ms": spread([r["p50_ms"] for r in una], "{:.2f}"),
               "unaudited_p99_ms": spread([r["p99_ms"] for r in una], "{:.2f}"),
               "audited_over_unaudited": spread(ratios, "{:.2f}"),
               "target_met": min(ratios) >= 0.5}
    return summary


def du_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.stat(os.path.join(root, f)).st_blocks * 512
    return total


def main():
    def extra(p):
        p.add_argument("mode", choices=["append", "read", "audit"])
        p.add_argument("--read-latency")
        p.add_argument("--carelogd-unaudited")
        p.add_argument("--patients", type=int, default=64)
        p.add_argument("--readers", type=int, default=64)
        p.add_argument("--reads", type=int, default=50000)
        p.add_argument("--repeat", type=int, default=3)
        p.add_argument("--clients", type=int, default=1)
        p.add_argument("--count", type=int, default=10000)
        p.add_argument("--body-bytes", type=int, default=1024)
        p.add_argument("--fill", type=int, default=1000000)
        p.add_argument("--patient-entries", type=int, default=200)
        p.add_argument("--iterations", type=int, default=2000)

    args = harness.parse_args(extra, tools=("carelogd", "carelogctl"))
    work = harness.Workdir("bench", args.keep)
    log(f"nproc={os.cpu_count()}")
    if args.mode == "audit":
        ok = False
        try:
            if args.read_latency:
                args.read_latency = os.path.abspath(args.read_latency)
            print(json.dumps(audit_compare(args, work.path)), flush=True)
            ok = True
        finally:
            work.done(ok)
        return
    node = harness.Node(args, work.path)
    ok = False
    try:
        node.start()
        care(node, [BULK_PATIENT, PATIENT])
        if args.mode == "append":
            result = bench_append(node, args.clients, args.count, args.body_bytes)
            result.update(clients=args.clients, count=args.count, body_bytes=args.body_bytes)
        else:
            check(args.read_latency, "read mode needs --read-latency")
            per_segment = args.patient_entries // FILL_SEGMENTS
            fill_s = 0.0
            fill_results = []
            for segment in range(FILL_SEGMENTS):
                t0 = time.monotonic()
                fill_results.append(bench_append(node, FILL_CLIENTS, args.fill // FILL_SEGMENTS,
                                                 FILL_BODY_BYTES))
                fill_s += time.monotonic() - t0
                n = per_segment if segment < FILL_SEGMENTS - 1 else \
                    args.patient_entries - per_segment * (FILL_SEGMENTS - 1)
                subprocess.run([args.read_latency, node.endpoint, "append", PATIENT, str(n),
                                "512"], check=True, timeout=600)
            r = subprocess.run([args.read_latency, node.endpoint, "read", PATIENT,
                                str(args.patient_entries), str(args.iterations)],
                               capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
            check(r.returncode == 0, f"read_latency failed: {r.stderr}")
            result = json.loads(r.stdout)
            status = json.loads(node.ctl(["status", "--json"]).stdout)
            result.update(store_entries=status["applied_index"], fill_s=round(fill_s, 1),
                          fill_entries_per_s=round(args.fill / fill_s),
                          data_dir_bytes=du_bytes(node.data_dir))
        node.stop()
        print(json.dumps(result), flush=True)
        ok = True
    finally:
        node.ensure_stopped()
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
