#!/usr/bin/env python3
"""Acceptance 4: an append is acknowledged only after the transaction holding it is synced.

carelogd runs under tests/tools/syncshim.so (LD_PRELOAD), which logs the old bytes of every
write under the data dir until that file is synced. After a SIGKILL, syncshim-powerloss undoes
every write no sync covered: the files hold what a power loss at that moment would have left.
Three runs, each on a fresh node:

  honest   several clients append, SIGKILL at a seeded point, power loss, restart without the
           shim: every acknowledged append must be there and verify must pass.
  lying    the same, but after a few syncs the shim's fdatasync returns success without
           making anything durable (a disk that lies). Acknowledged appends MUST then go
           missing and the same check MUST notice: the test can fail.
  eio      after a seeded number of syncs fdatasync fails with EIO: carelogd must stop with a
           non-zero status and a fatal log line, and every append it acknowledged before must
           survive the power loss.
"""

import os
import random
import subprocess

import harness
from harness import check, log

CLIENTS = 6
KILL_AFTER_ACKS_MIN = 30
KILL_AFTER_ACKS_MAX = 250
LIE_AFTER_SYNCS = 3          # lying run: syncs honoured before the disk starts lying
LIE_KILL_AFTER_ACKS = 60     # lying run: acknowledgements before the kill
EIO_AFTER_SYNCS_MIN = 5
EIO_AFTER_SYNCS_MAX = 40
EIO_EXIT_WAIT_S = 120


def shim_env(node, work, extra):
    env = {"SYNCSHIM_DIR": node.data_dir,
           "SYNCSHIM_UNDO": os.path.join(work, "undo.log"),
           "SYNCSHIM_STATS": os.path.join(work, "shim.stats")}
    env.update(extra)
    return env


def shim_stats(work):
    with open(os.path.join(work, "shim.stats")) as f:
        return {k: int(v) for k, v in (kv.split("=") for kv in f.read().split())}


def power_loss(args, work):
    r = subprocess.run([args.powerloss, os.path.join(work, "undo.log")],
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"syncshim-powerloss failed: {r.stderr}")
    log(f"power loss: {r.stdout.strip()}")


def fresh_node(args, base, name, tag):
    work = os.path.join(base, name)
    os.makedirs(work)
    node = harness.Node(args, work)
    # The first start creates the data dir (the shim tracks an existing directory) and, before
    # any shim, the care relations the load's clients need: a lying or failing disk must not
    # take them away, or the appends would be refused instead of lost.
    node.start()
    node.care(harness.AppendLoad.patients_for(tag, CLIENTS))
    node.stop()
    return node, work


def run_under_shim(args, node, work, kill_after, seed, tag, extra_env):
    node.start(env_extra=shim_env(node, work, extra_env), preload=os.path.abspath(args.syncshim))
    load = harness.AppendLoad(node, tag, seed, CLIENTS)
    acked = load.run_until(kill_after)
    rc = node.kill()
    load.finish()
    stats = shim_stats(work)
    log(f"{tag}: SIGKILL after {acked} acknowledgements (exit {rc}); shim {stats}")
    check(stats["writes"] > 0 and stats["syncs"] > 0,
          "the shim saw no writes or syncs under the data dir: it proved nothing")
    power_loss(args, work)
    return load


def honest(args, base, rng):
    node, work = fresh_node(args, base, "honest", "sync")
    try:
        kill_after = rng.randint(KILL_AFTER_ACKS_MIN, KILL_AFTER_ACKS_MAX)
        load = run_under_shim(args, node, work, kill_after, args.seed, "sync", {})
        node.start()
        problems = harness.check_acknowledged(node, load.acked)
        check(not problems, "acknowledged appends lost at power loss: " + "; ".join(problems[:10]))
        rc, out = node.verify()
        check(rc == 0, f"verify after power loss exited {rc}: {out}")
        node.stop()
        harness.assert_logs_clean(node, load.secrets())
        log(f"honest: all {len(load.acked)} acknowledged appends survived the power loss")
    finally:
        node.ensure_stopped()


def lying(args, base):
    node, work = fresh_node(args, base, "lying", "lie")
    try:
        load = run_under_shim(args, node, work, LIE_KILL_AFTER_ACKS, args.seed, "lie",
                              {"SYNCSHIM_LIE_AFTER": str(LIE_AFTER_SYNCS)})
        check(shim_stats(work)["syncs_lied"] > 0, "the disk never lied")
        node.start(wait=False)
        try:
            node.wait_ready()
            problems = harness.check_acknowledged(node, load.acked)
            rc, out = node.verify()
        except harness.TestFailure as e:
            problems, rc = [f"node unusable after the lying power loss: {e}"], None
        check(problems, "a disk that lies about fdatasync lost no acknowledged append: "
              "the power-loss check cannot fail, so the honest run proves nothing")
        log(f"lying: the check caught the loss as it must ({len(problems)} problems, e.g. "
            f"{problems[0]}); verify exit {rc}")
    finally:
        node.ensure_stopped()


def eio(args, base, rng):
    node, work = fresh_node(args, base, "eio", "eio")
    try:
        eio_after = rng.randint(EIO_AFTER_SYNCS_MIN, EIO_AFTER_SYNCS_MAX)
        node.start(env_extra=shim_env(node, work, {"SYNCSHIM_EIO_AFTER": str(eio_after)}),
                   preload=os.path.abspath(args.syncshim))
        load = harness.AppendLoad(node, "eio", args.seed, CLIENTS)
        load.run_until(1 << 30)  # until the clients stop: the node goes away by itself
        rc = node.wait_exit(EIO_EXIT_WAIT_S)
        load.finish()
        stats = shim_stats(work)
        log(f"eio: fdatasync failed after {eio_after} syncs; carelogd exited {rc}; "
            f"{len(load.acked)} acknowledged before; shim {stats}")
        check(stats["syncs_failed"] >= 1, "the shim never failed a sync")
        check(rc not in (0, None) and rc > 0, f"carelogd exit status {rc} after EIO: want > 0")
        text = node.all_logs()
        check("level=fatal" in text or "level=FATAL" in text,
              "no fatal log line after the failed sync:\n" + node.last_log())
        power_loss(args, work)
        node.start()
        problems = harness.check_acknowledged(node, load.acked)
        check(not problems, "after EIO and power loss: " + "; ".join(problems[:10]))
        rc, out = node.verify()
        check(rc == 0, f"verify after EIO exited {rc}: {out}")
        node.stop()
        harness.assert_logs_clean(node, load.secrets())
    finally:
        node.ensure_stopped()


def main():
    args = harness.parse_args()
    rng = random.Random(args.seed)
    work = harness.Workdir("sync", args.keep)
    ok = False
    try:
        honest(args, work.path, rng)
        lying(args, work.path)
        eio(args, work.path, rng)
        ok = True
    finally:
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
