#!/usr/bin/env python3
"""Benchmarks of one real node (run by `meson test --benchmark`; figures in BENCHMARKS.md).

  bench.py append --clients N --count M --body-bytes B
      committed, synced, signed appends through `carelogctl bench append` on a fresh node
  bench.py read --fill N --patient-entries E --iterations I
      fills a fresh node with N entries (`carelogctl bench append --clients 64`, timed), with
      one patient's E entries spread through the fill, then measures that patient's timeline
      read latency over I reads through libcarelog (tests/bench/read_latency)
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
BENCH_TIMEOUT_S = 3 * 3600


def bench_append(node, clients, count, body_bytes):
    r = node.ctl(["bench", "append", "--clients", str(clients), "--count", str(count),
                  "--body-bytes", str(body_bytes), "--json"], timeout_s=BENCH_TIMEOUT_S)
    result = json.loads(r.stdout)
    check(result.get("errors", 0) == 0, f"bench append reported errors: {result}")
    return result


def du_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.stat(os.path.join(root, f)).st_blocks * 512
    return total


def main():
    def extra(p):
        p.add_argument("mode", choices=["append", "read"])
        p.add_argument("--read-latency")
        p.add_argument("--clients", type=int, default=1)
        p.add_argument("--count", type=int, default=10000)
        p.add_argument("--body-bytes", type=int, default=1024)
        p.add_argument("--fill", type=int, default=1000000)
        p.add_argument("--patient-entries", type=int, default=200)
        p.add_argument("--iterations", type=int, default=2000)

    args = harness.parse_args(extra, tools=("carelogd", "carelogctl"))
    work = harness.Workdir("bench", args.keep)
    node = harness.Node(args, work.path)
    ok = False
    try:
        node.start()
        log(f"nproc={os.cpu_count()}")
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
