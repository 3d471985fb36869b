"""Shared fixture of the integration tests: a real carelogd, carelogctl calls, checks.

Each test script imports it, parses the binaries' paths meson passes, and drives one node made
by deploy/local-cluster init. Every patient id and body used here is synthetic; the tests check
that none of them reaches the node's log.

Access (docs/access.md): the node denies by default. Clinical calls here act as CLINICIAN (a
physician); before a test appends for a patient, Node.care adds a care relation for it at the
node's organisation as ADMIN (one `carelogctl relation add` each, request id "care-<patient>",
so a retry never makes a second). Operator commands (status, verify) use the node's default
actor, whose role is operator.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCAL_CLUSTER = os.path.join(TOP, "deploy", "local-cluster")

READY_TRIES = 300      # status polls while waiting for a node to serve
POLL_S = 0.05          # pause between polls (the poll is the synchronisation, not the pause)
EXIT_WAIT_S = 60       # bound on waiting for a node to exit
CTL_TIMEOUT_S = 60     # bound on one carelogctl run (its own --timeout is shorter)
EXIT_PENDING = 3       # carelogctl: outcome pending, retry with the same request id
ADMIN = "itest-admin:admin"                # adds care relations (the organisation's admin)
CLINICIAN = "itest-clinician:physician"    # appends and reads
CARE_THREADS = 8       # concurrent `relation add` runs in Node.care
CARE_TRIES = 20        # tries of one relation add (exit 3: pending, same request id)

# Kinds that are policy, not clinical (node/journal/policy.h): whatever a timeline read shows of
# them is left out where the tests compare timelines with what they appended.
POLICY_KINDS = frozenset((
    "patient", "care-relation", "care-relation-end", "block", "block-lift", "withhold",
    "withhold-lift", "proxy-grant", "proxy-revoke", "ambulance-assignment", "btg-grant",
    "btg-review", "erasure", "policy-params", "audit-batch"))



def free_tcp_port():
    """A loopback TCP port nobody listens on right now (the kernel's pick)."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

class TestFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def log(msg):
    print(msg, flush=True)


TOOLS = ("carelogd", "carelogctl", "syncshim", "powerloss", "lmdb-flip", "rawreq")


def parse_args(extra=None, tools=TOOLS):
    p = argparse.ArgumentParser()
    for name in tools:
        p.add_argument("--" + name, required=True)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    if extra:
        extra(p)
    args = p.parse_args()
    for name in tools:  # meson passes paths relative to the build dir
        attr = name.replace("-", "_")
        setattr(args, attr, os.path.abspath(getattr(args, attr)))
    if args.seed is None:
        env_seed = os.environ.get("CARELOG_SEED")
        args.seed = int(env_seed) if env_seed else random.SystemRandom().randrange(1 << 31)
    log(f"seed={args.seed} (rerun with --seed {args.seed} or CARELOG_SEED={args.seed})")
    return args


def asan_env(env):
    """Preloading a shim into a sanitized binary: ASan must not insist on coming first."""
    opts = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "verify_asan_link_order=0"
    return env


class Workdir:
    """A temporary directory kept (and named) when the test fails."""

    def __init__(self, name, keep=False):
        # Short paths: ipc:// socket paths are limited to 107 bytes.
        self.path = tempfile.mkdtemp(prefix=f"cl-{name}-")
        self.keep = keep

    def done(self, ok):
        if ok and not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            log(f"work dir kept: {self.path}")


class Node:
    """One carelogd made by deploy/local-cluster init, run under this test's control."""

    def __init__(self, args, region_dir, body_max_bytes=None, node_id=1):
        self.args = args
        self.dir = region_dir
        self.id = node_id
        self.proc = None
        self.runs = 0
        if not os.path.exists(os.path.join(region_dir, "genesis.ini")):
            bindir = os.path.dirname(os.path.dirname(os.path.dirname(args.carelogd)))
            # Every node listens for peers on its member address: tests that run side by
            # side each need their own port.
            cmd = [LOCAL_CLUSTER, "init", region_dir, "--voters", "1", "--bin-dir", bindir,
                   "--base-port", str(free_tcp_port())]
            if body_max_bytes is not None:
                cmd += ["--body-max-bytes", str(body_max_bytes)]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=CTL_TIMEOUT_S)
            check(r.returncode == 0, f"local-cluster init failed: {r.stderr}")
        self.node_dir = os.path.join(region_dir, f"node{node_id}")
        self.config = os.path.join(self.node_dir, "carelogd.ini")
        self.data_dir = os.path.join(self.node_dir, "data")
        self.endpoint = f"ipc://{self.node_dir}/client.sock"
        self.logs = []  # one stderr file per run

    # ---------------------------------------------------------------- process

    def start(self, env_extra=None, preload=None, wait=True, binary=None):
        """Starts carelogd (or `binary`, e.g. the benchmarks' unaudited build) on this node's
        config and data."""
        check(self.proc is None, "node already running")
        env = dict(os.environ)
        if env_extra:
            env.update(env_extra)
        if preload:
            env["LD_PRELOAD"] = preload
            asan_env(env)
        self.runs += 1
        log_path = os.path.join(self.node_dir, f"carelogd.run{self.runs}.log")
        self.logs.append(log_path)
        self.log_file = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [binary or self.args.carelogd, "--config", self.config],
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_ready()
        return self.proc

    def wait_ready(self):
        for _ in range(READY_TRIES):
            if self.proc.poll() is not None:
                raise TestFailure(f"carelogd exited with {self.proc.returncode} while starting:\n"
                                  + self.last_log())
            r = self.ctl(["status", "--json"], timeout_s=1, check_rc=False)
            if r.returncode == 0 and json.loads(r.stdout).get("role") == "leader":
                return
            time.sleep(POLL_S)
        raise TestFailure("carelogd did not serve in time:\n" + self.last_log())

    def kill(self, sig=signal.SIGKILL):
        check(self.proc is not None, "node not running")
        self.proc.send_signal(sig)
        return self.wait_exit()

    def wait_exit(self, timeout_s=EXIT_WAIT_S):
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TestFailure(f"carelogd did not exit within {timeout_s}s")
        self.proc = None
        self.log_file.close()
        return rc

    def stop(self):
        rc = self.kill(signal.SIGTERM)
        check(rc == 0, f"carelogd exited with {rc} after SIGTERM:\n{self.last_log()}")

    def ensure_stopped(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.log_file.close()

    def last_log(self, lines=15):
        if not self.logs:
            return ""
        with open(self.logs[-1], "rb") as f:
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])

    def all_logs(self):
        text = b""
        for path in self.logs:
            with open(path, "rb") as f:
                text += f.read()
        return text.decode(errors="replace")

    # ---------------------------------------------------------------- client

    def ctl(self, argv, timeout_s=10, check_rc=True):
        cmd = [self.args.carelogctl, "--endpoint", self.endpoint, "--timeout", str(timeout_s)]
        r = subprocess.run(cmd + argv, capture_output=True, text=True,
                           timeout=CTL_TIMEOUT_S + timeout_s, stdin=subprocess.DEVNULL)
        if check_rc and r.returncode != 0:
            raise TestFailure(f"carelogctl {' '.join(argv)} exited {r.returncode}: {r.stderr}")
        return r

    def care(self, patients, admin=ADMIN):
        """Adds a care relation at this node's organisation for every patient (as `admin`), so
        that CLINICIAN may append and read; returns the highest log index among them."""
        patients = sorted(set(patients))
        lock = threading.Lock()
        indexes, errors = [], []

        def worker(mine):
            for patient in mine:
                rid = f"care-{patient}"[:64]
                for _ in range(CARE_TRIES):
                    r = self.ctl(["--actor", admin, "relation", "add", "--patient", patient,
                                  "--request-id", rid, "--json"], check_rc=False)
                    if r.returncode != EXIT_PENDING:
                        break
                with lock:
                    if r.returncode == 0:
                        indexes.append(json.loads(r.stdout)["index"])
                    else:
                        errors.append(f"relation add ({r.returncode}): {r.stderr.strip()}")
        threads = [threading.Thread(target=worker, args=(patients[t::CARE_THREADS],))
                   for t in range(min(CARE_THREADS, len(patients)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(not errors, f"care relations for {len(patients)} patients: {errors[:3]}")
        return max(indexes, default=0)

    def append(self, patient, kind, body, request_id=None, timeout_s=10):
        """Returns (exit code, reply dict or None, stderr)."""
        argv = ["--actor", CLINICIAN, "append", "--patient", patient, "--kind", kind,
                "--body", body, "--json"]
        if request_id:
            argv += ["--request-id", request_id]
        r = self.ctl(argv, timeout_s=timeout_s, check_rc=False)
        reply = None
        if r.returncode == 0:
            reply = json.loads(r.stdout)
        return r.returncode, reply, r.stderr

    def read_all(self, patient):
        """Every entry of a patient's timeline, following `more` pages."""
        entries = []
        since = 0
        for _ in range(100000):
            r = self.ctl(["--actor", CLINICIAN, "read", "--patient", patient, "--since-index",
                          str(since), "--limit", "1000", "--json"])
            page = json.loads(r.stdout)
            entries += [e for e in page["entries"] if e["kind"] not in POLICY_KINDS]
            if not page.get("more") or not page["entries"]:
                return entries
            since = page["entries"][-1]["index"]
        raise TestFailure("timeline does not end")

    def get(self, entry_id):
        r = self.ctl(["--actor", CLINICIAN, "get", "--id", entry_id, "--json"], check_rc=False)
        return r.returncode, (json.loads(r.stdout) if r.returncode == 0 else None), r.stderr

    def verify(self):
        r = self.ctl(["verify", "--json"], timeout_s=120, check_rc=False)
        return r.returncode, r.stdout + r.stderr


def denied(stderr):
    """Whether a failed carelogctl run was an access denial (CARELOG_EDENIED: "not allowed")
    rather than the failure a test looks for."""
    text = stderr.lower()
    return "not allowed" in text or "edenied" in text or "denied" in text


def patient_key_hex(patient):
    """The patient index key (docs/on-disk-format.md): SHA-256 of a domain prefix and the id."""
    return hashlib.sha256(b"carelog patient v1\0" + patient.encode()).hexdigest()


def assert_logs_clean(node, secrets):
    """Logs carry indexes, entry ids and hashes of entries only: never a patient id or a body
    the test used, nor a patient's index key (an unsalted hash of the id is a pseudonym)."""
    text = node.all_logs()
    leaked = sorted({s for s in secrets if s and s in text})
    leaked += sorted({s for s in secrets if s and s.startswith("itest-") and
                      patient_key_hex(s) in text.lower()})
    check(not leaked, f"node log contains patient data: {leaked[:5]}")


def check_acknowledged(node, acked):
    """Every acknowledged append is present with its index and id; none appears twice.

    acked: {request_id: {"index", "id", "patient"}}. Returns a list of problems (empty = ok).
    """
    problems = []
    by_patient = {}
    for rid, a in acked.items():
        by_patient.setdefault(a["patient"], set()).add(rid)
    seen_index = {}
    for patient, rids in sorted(by_patient.items()):
        entries = node.read_all(patient)
        count = {}
        for e in entries:
            count[e["request_id"]] = count.get(e["request_id"], 0) + 1
            if e["index"] in seen_index:
                problems.append(f"index {e['index']} served twice")
            seen_index[e["index"]] = e["request_id"]
        for rid in rids:
            a = acked[rid]
            n = count.get(rid, 0)
            if n == 0:
                problems.append(f"acknowledged request {rid} (index {a['index']}) missing")
                continue
            if n > 1:
                problems.append(f"request {rid} appears {n} times")
            match = [e for e in entries if e["request_id"] == rid]
            if match[0]["index"] != a["index"] or match[0]["id"] != a["id"]:
                problems.append(f"request {rid}: acknowledged index {a['index']} id {a['id']}, "
                                f"stored index {match[0]['index']} id {match[0]['id']}")
    return problems


class AppendLoad:
    """Concurrent clients appending with their own request ids, recording what was acknowledged.

    Each client runs `carelogctl append --request-id` in a loop; an exit 0 with state
    "committed" is an acknowledgement (index and entry id recorded), exit 3 a pending outcome,
    anything else ends that client (the node is gone).
    """

    REQUESTS_PER_CLIENT_MAX = 5000
    PATIENTS_PER_CLIENT = 7
    RETRY_ROUNDS_MAX = 20    # retries of one unacknowledged request
    KINDS = ["note", "vital-signs", "lab-result", "medication"]
    WAIT_S = 300             # bound on waiting for the load to reach a point

    def __init__(self, node, tag, seed, clients):
        self.node = node
        self.tag = tag
        self.seed = seed
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.requests = {}   # request id -> (patient, kind, body)
        self.acked = {}      # request id -> {index, id, patient}
        self.pending = 0
        self.errors = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(c,))
                        for c in range(clients)]

    @classmethod
    def patient(cls, tag, client, n):
        return f"itest-{tag}-{client:02d}-{n % cls.PATIENTS_PER_CLIENT:03d}"

    @classmethod
    def patients_for(cls, tag, clients):
        """Every patient a load of `clients` clients with this tag appends for: what
        Node.care must cover before the load starts (see prepare)."""
        return [cls.patient(tag, c, n) for c in range(clients)
                for n in range(cls.PATIENTS_PER_CLIENT)]

    def prepare(self):
        """Care relations for every patient of this load (the node must be running)."""
        return self.node.care(self.patients_for(self.tag, len(self.threads)))

    def request(self, client, n):
        rid = f"{self.tag}-{self.seed:x}-{client:02d}-{n:06d}"
        patient = self.patient(self.tag, client, n)
        kind = self.KINDS[n % len(self.KINDS)]
        body = f"itest {self.tag} body {client}/{n}: synthetic observation text"
        return rid, patient, kind, body

    def _client(self, client):
        try:
            for n in range(self.REQUESTS_PER_CLIENT_MAX):
                if self.stop.is_set():
                    return
                rid, patient, kind, body = self.request(client, n)
                with self.lock:
                    self.requests[rid] = (patient, kind, body)
                rc, reply, _ = self.node.append(patient, kind, body, request_id=rid, timeout_s=5)
                with self.lock:
                    if rc == 0 and reply["state"] == "committed":
                        if reply["request_id"] != rid:
                            self.errors.append(f"reply for {rid} names {reply['request_id']}")
                        self.acked[rid] = {"index": reply["index"], "id": reply["id"],
                                           "patient": patient}
                        self.changed.notify_all()
                    elif rc == EXIT_PENDING:
                        self.pending += 1
                    else:
                        return
        except Exception as e:  # a thread cannot fail the test: main reports it
            with self.lock:
                self.errors.append(f"client {client}: {e!r}")
        finally:
            with self.lock:
                self.changed.notify_all()

    def run_until(self, acks):
        """Starts the clients; returns once `acks` appends were acknowledged or all stopped."""
        for t in self.threads:
            t.start()
        with self.lock:
            self.changed.wait_for(lambda: len(self.acked) >= acks or self.errors or
                                  not any(t.is_alive() for t in self.threads),
                                  timeout=self.WAIT_S)
            check(not self.errors, "; ".join(self.errors[:5]))
            return len(self.acked)

    def wait_all_stopped(self, timeout_s):
        with self.lock:
            return self.changed.wait_for(
                lambda: not any(t.is_alive() for t in self.threads), timeout=timeout_s)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        check(not self.errors, "; ".join(self.errors[:5]))

    def unacknowledged(self):
        return sorted(set(self.requests) - set(self.acked))

    def retry(self, rids):
        """Retries each request with its own request id until committed; returns how many the
        node answered as duplicates (they had committed before)."""
        duplicates = 0
        for rid in rids:
            patient, kind, body = self.requests[rid]
            for _ in range(self.RETRY_ROUNDS_MAX):
                rc, reply, err = self.node.append(patient, kind, body, request_id=rid,
                                                  timeout_s=10)
                if rc == 0 and reply["state"] == "committed":
                    break
                check(rc == EXIT_PENDING, f"retry of {rid} failed ({rc}): {err}")
            else:
                raise TestFailure(f"retry of {rid} never committed")
            check(reply["request_id"] == rid, f"retry reply names {reply['request_id']}")
            duplicates += 1 if reply.get("duplicate") else 0
            self.acked[rid] = {"index": reply["index"], "id": reply["id"], "patient": patient}
        return duplicates

    def secrets(self):
        return {p for p, _, _ in self.requests.values()} | {b for _, _, b in self.requests.values()}


def run(main):
    """Runs a test's main() and maps its outcome to the exit code meson reads."""
    try:
        main()
    except TestFailure as e:
        log(f"FAIL: {e}")
        sys.exit(1)
    log("PASS")
    sys.exit(0)


# ---------------------------------------------------------------------- tiny msgpack

def mp_pack(obj):
    """Enough msgpack for hand-made requests: dict, str, bytes, int >= 0, bool, None, list."""
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 128:
            return bytes([obj])
        if 0 <= obj < 1 << 32:
            return b"\xce" + obj.to_bytes(4, "big")
        return b"\xcf" + obj.to_bytes(8, "big")
    if isinstance(obj, str):
        b = obj.encode()
        if len(b) < 32:
            return bytes([0xa0 | len(b)]) + b
        return b"\xdb" + len(b).to_bytes(4, "big") + b
    if isinstance(obj, bytes):
        return b"\xc6" + len(obj).to_bytes(4, "big") + obj
    if isinstance(obj, list):
        return b"\xdd" + len(obj).to_bytes(4, "big") + b"".join(mp_pack(x) for x in obj)
    if isinstance(obj, dict):
        out = b"\xdf" + len(obj).to_bytes(4, "big")
        for k, v in obj.items():
            out += mp_pack(k) + mp_pack(v)
        return out
    raise TypeError(type(obj))


def mp_unpack(data):
    """Decodes one msgpack value (the subset replies use); raises ValueError on junk."""
    value, pos = _mp_unpack_at(data, 0)
    if pos != len(data):
        raise ValueError("trailing bytes")
    return value


def _mp_unpack_at(d, i):
    b = d[i]
    i += 1
    if b < 0x80:
        return b, i
    if b >= 0xe0:
        return b - 0x100, i
    if 0xa0 <= b <= 0xbf:
        n = b & 0x1f
        return d[i:i + n].decode(errors="replace"), i + n
    if 0x90 <= b <= 0x9f:
        return _mp_seq(d, i, b & 0x0f)
    if 0x80 <= b <= 0x8f:
        return _mp_map(d, i, b & 0x0f)
    fixed = {0xc0: None, 0xc2: False, 0xc3: True}
    if b in fixed:
        return fixed[b], i
    sizes = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}
    if b in sizes:
        n = sizes[b]
        return int.from_bytes(d[i:i + n], "big"), i + n
    ssizes = {0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8}
    if b in ssizes:
        n = ssizes[b]
        return int.from_bytes(d[i:i + n], "big", signed=True), i + n
    lens = {0xd9: 1, 0xda: 2, 0xdb: 4, 0xc4: 1, 0xc5: 2, 0xc6: 4}
    if b in lens:
        n = lens[b]
        length = int.from_bytes(d[i:i + n], "big")
        i += n
        raw = d[i:i + length]
        return (raw.decode(errors="replace") if b >= 0xd9 else bytes(raw)), i + length
    if b in (0xdc, 0xdd):
        n = 2 if b == 0xdc else 4
        return _mp_seq(d, i + n, int.from_bytes(d[i:i + n], "big"))
    if b in (0xde, 0xdf):
        n = 2 if b == 0xde else 4
        return _mp_map(d, i + n, int.from_bytes(d[i:i + n], "big"))
    raise ValueError(f"msgpack type 0x{b:02x} not handled")


def _mp_seq(d, i, n):
    out = []
    for _ in range(n):
        v, i = _mp_unpack_at(d, i)
        out.append(v)
    return out, i


def _mp_map(d, i, n):
    out = {}
    for _ in range(n):
        k, i = _mp_unpack_at(d, i)
        v, i = _mp_unpack_at(d, i)
        out[k] = v
    return out, i
