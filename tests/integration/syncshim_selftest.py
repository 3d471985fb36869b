#!/usr/bin/env python3
"""The sync shim itself: after a SIGKILL and syncshim-powerloss, exactly the synced bytes stay.

tests/tools/syncshim-selftest writes, syncs, overwrites, extends and writes through an O_DSYNC
descriptor, then SIGKILLs itself under the shim. Expected afterwards: the fdatasync'd 100 x 'A'
with the O_DSYNC "MMM" at offset 20, and nothing of the unsynced writes (the file is 100 bytes
again). Runs before the node tests rely on the shim.
"""

import os
import subprocess

import harness
from harness import check, log


def main():
    args = harness.parse_args(lambda p: p.add_argument("--selftest", required=True),
                              tools=("syncshim", "powerloss"))
    work = harness.Workdir("shim", args.keep)
    ok = False
    try:
        data = os.path.join(work.path, "data")
        os.makedirs(data)
        undo = os.path.join(work.path, "undo.log")
        env = harness.asan_env(dict(os.environ, LD_PRELOAD=args.syncshim, SYNCSHIM_DIR=data,
                                    SYNCSHIM_UNDO=undo))
        r = subprocess.run([os.path.abspath(args.selftest), data], env=env, timeout=60,
                           capture_output=True, text=True)
        check(r.returncode == -9, f"selftest exit {r.returncode}, want SIGKILL: {r.stderr}")
        with open(os.path.join(data, "f"), "rb") as f:
            before = f.read()
        check(len(before) == 140, f"before the power loss the file has {len(before)} bytes")
        r = subprocess.run([args.powerloss, undo], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"powerloss failed: {r.stderr}")
        log(r.stdout.strip())
        with open(os.path.join(data, "f"), "rb") as f:
            after = f.read()
        want = b"A" * 20 + b"MMM" + b"A" * 77
        check(after == want, f"after the power loss: {after!r}, want {want!r}")
        ok = True
    finally:
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
