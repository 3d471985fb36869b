#!/usr/bin/env python3
"""Bad input: malformed, oversized and wrong-version requests, an oversized body, bad configs.

Raw requests go through tests/tools/rawreq (nng req0, bytes as given). Each must get an error
reply (a msgpack map with a non-zero "err" and a message) and the node must keep serving. A body
over the region's body_max_bytes is refused naming the limit. carelogd must refuse to start
(exit 1, stderr saying which) on a missing key file, a key of the wrong size, or a data dir of
another node or another cluster.
"""

import os
import re
import subprocess

import harness
from harness import check, log, mp_pack, mp_unpack

BODY_MAX_BYTES = 4096
OVERSIZE_REQUEST_BYTES = 3 * 1024 * 1024  # above the derived request limit (>= 1 MiB)
START_REFUSAL_WAIT_S = 60
RAWREQ_WAIT_S = 30         # rawreq gives up after 10 s itself


def raw_request(args, node, work, name, payload):
    path = os.path.join(work, f"{name}.bin")
    with open(path, "wb") as f:
        f.write(payload)
    try:
        r = subprocess.run([args.rawreq, node.endpoint, path], capture_output=True, text=True,
                           timeout=RAWREQ_WAIT_S)
    except subprocess.TimeoutExpired:
        return None, f"no reply within {RAWREQ_WAIT_S}s"
    if r.returncode != 0:
        return None, f"no reply: {r.stderr.strip()}"
    try:
        return mp_unpack(bytes.fromhex(r.stdout.strip())), None
    except (ValueError, IndexError) as e:
        return None, f"reply is not msgpack: {e}"


def bad_requests(args, node, work):
    problems = []
    good_status = {"v": 1, "op": "status"}
    reply, err = raw_request(args, node, work, "status", mp_pack(good_status))
    check(reply is not None and reply.get("err") == 0,
          f"a hand-made status request failed ({err or reply}): the test's msgpack is wrong")
    cases = [
        ("garbage", b"\xc1\xff not msgpack at all"),
        ("truncated map", mp_pack({"v": 1, "op": "append", "patient": "itest-bad-0001"})[:-5]),
        ("not a map", mp_pack([1, 2, 3])),
        ("empty", b""),
        ("wrong version", mp_pack({"v": 99, "op": "status"})),
        ("unknown op", mp_pack({"v": 1, "op": "frobnicate"})),
        ("append missing fields", mp_pack({"v": 1, "op": "append"})),
        ("oversized", mp_pack({"v": 1, "op": "append", "patient": "itest-bad-0001",
                               "kind": "note", "request_id": "bad-oversized",
                               "body": b"x" * OVERSIZE_REQUEST_BYTES})),
    ]
    for name, payload in cases:
        reply, err = raw_request(args, node, work, name.replace(" ", "_"), payload)
        if reply is None:
            problems.append(f"{name}: {err}")
        elif not isinstance(reply, dict) or not reply.get("err") or not reply.get("msg"):
            problems.append(f"{name}: reply is not an error with a message: {reply}")
        else:
            log(f"  {name}: err={reply['err']} msg={reply['msg']!r}")
        r = node.ctl(["status", "--json"], check_rc=False)
        if r.returncode != 0:
            problems.append(f"{name}: status failed afterwards ({r.returncode}): {r.stderr}")
            break
    check(not problems, "\n  ".join([""] + problems))


def body_limit(node):
    node.care(["itest-bad-0002"])
    rc, _, err = node.append("itest-bad-0002", "note", "y" * BODY_MAX_BYTES)
    check(rc == 0, f"a body of exactly body_max_bytes ({BODY_MAX_BYTES}) was refused: {err}")
    rc, _, err = node.append("itest-bad-0002", "note", "y" * (BODY_MAX_BYTES + 1))
    check(rc == 1, f"a body over body_max_bytes: exit {rc}, want 1")
    check(str(BODY_MAX_BYTES) in err, f"the refusal does not name the limit {BODY_MAX_BYTES}: {err}")
    log(f"  body over the limit refused: {err.strip()}")


def refuses(args, config, expect, what):
    """carelogd --config config must exit 1 with stderr matching `expect`."""
    r = subprocess.run([args.carelogd, "--config", config], capture_output=True, text=True,
                       timeout=START_REFUSAL_WAIT_S, stdin=subprocess.DEVNULL)
    check(r.returncode == 1, f"{what}: carelogd exit {r.returncode}, want 1: {r.stderr[-500:]}")
    check(re.search(expect, r.stderr, re.I),
          f"{what}: stderr does not say which ({expect}): {r.stderr[-500:]}")
    log(f"  {what}: refused: {r.stderr.strip().splitlines()[-1][:200]}")


def edit_config(src, dst, **changes):
    lines = []
    with open(src) as f:
        for line in f:
            key = line.split("=")[0].strip()
            if key in changes:
                line = f"{key} = {changes[key]}\n"
            lines.append(line)
    with open(dst, "w") as f:
        f.writelines(lines)
    return dst


def bad_configs(args, node, work):
    missing = edit_config(node.config, os.path.join(work, "missing-key.ini"),
                          key_file=os.path.join(work, "no-such-dir", "node.key"))
    refuses(args, missing, r"no-such-dir/node\.key", "missing key file")

    short_key = os.path.join(work, "short.key")
    fd = os.open(short_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"ab" * 30 + b"\n")
    os.close(fd)
    wrong = edit_config(node.config, os.path.join(work, "short-key.ini"), key_file=short_key)
    refuses(args, wrong, r"short\.key", "key of the wrong size")

    # Another node's data dir: same cluster, the data dir says node 1, the config node 2.
    other_node = edit_config(node.config, os.path.join(work, "other-node.ini"), id="2")
    refuses(args, other_node, r"node", "data dir of another node")

    # Another cluster's data dir: a second region's node pointed at this node's data.
    other = harness.Node(args, os.path.join(work, "other-region"))
    cross = edit_config(other.config, os.path.join(work, "other-cluster.ini"),
                        data_dir=node.data_dir)
    refuses(args, cross, r"cluster", "data dir of another cluster")


def main():
    args = harness.parse_args()
    work = harness.Workdir("badinput", args.keep)
    node = harness.Node(args, os.path.join(work.path, "region"), body_max_bytes=BODY_MAX_BYTES)
    ok = False
    try:
        node.start()
        log("bad requests:")
        bad_requests(args, node, work.path)
        log("body limit:")
        body_limit(node)
        node.stop()
        log("bad configs:")
        bad_configs(args, node, work.path)
        node.start()  # the node still starts from its own config and data
        node.stop()
        harness.assert_logs_clean(node, {"itest-bad-0001", "itest-bad-0002", "y" * 64})
        ok = True
    finally:
        node.ensure_stopped()
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
