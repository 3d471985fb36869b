"""Shared fixture of the cluster tests: a real multi-node region, load with a history, checks.

A test script builds a region with deploy/local-cluster (Cluster), runs writers and readers
through carelogctl against its nodes while it injects faults (Workload, recording every
operation's start, end and outcome in a History), and ends with Cluster.final_checks: pending
appends retried with their request ids, a linearizable read of every patient on every node,
the linearizability checker (checker.py) over the whole history, equal applied index and chain
head on every node, equal timelines on every node, `verify` on every node, no patient data in
any log, and a clean shutdown.

Every wait is a poll with a deadline (scaled by CARELOG_CLUSTER_TIME_SCALE for slow machines);
every random choice comes from the seed printed at the start. Patient ids and bodies are
synthetic ("ctest-...").

Access (docs/access.md): every node denies by default, and node N acts for its own
organisation (local-org-N). Before a workload starts, Cluster.care has the admin of every
organisation add a care relation for each of its patients through that organisation's node
(`carelogctl --actor ctest-admin:admin relation add`), and waits until every node has applied
them; a learner added later gets its organisation's relations before it serves. Appends and
reads act as CLINICIAN (a physician). Policy entries a timeline read may show (the relations
themselves) are left out of the timelines the checks compare. status, verify and membership
use the node's default actor, whose role is operator.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
LOCAL_CLUSTER = os.path.join(TOP, "deploy", "local-cluster")
sys.path.insert(0, HERE)
import checker  # noqa: E402

POLL_S = 0.05              # pause between polls (the poll is the synchronisation, not the pause)
CTL_WAIT_S = 30            # bound on one carelogctl run beyond its own --timeout
LC_WAIT_S = 900            # bound on one deploy/local-cluster run
APPEND_TIMEOUT_S = 5       # carelogctl --timeout of one append attempt
READ_TIMEOUT_S = 5         # ... of one read page
STATUS_TIMEOUT_S = 2
RETRY_PAUSE_S = 0.05       # between retries of one append (pacing, not synchronisation)
READ_PAGE_MAX = 1000       # carelogctl read --limit bound
READ_PAGES_MAX = 1000      # pages of one timeline (1,000,000 entries)
NODES_MAX = 16             # deploy/local-cluster's node id range
RELAY_PORTS = NODES_MAX + NODES_MAX * NODES_MAX
PORT_TRIES = 200           # candidate port blocks tried
SLOW_S = 2.0               # an operation slower than this is logged
EXIT_PENDING = 3
EXIT_USAGE = 2
ADMIN = "ctest-admin:admin"               # adds care relations for its organisation
CLINICIAN = "ctest-clinician:physician"   # appends and reads
CARE_TRIES = 40            # tries of one relation add (pending, or the leader moving)

# Kinds that are policy, not clinical (node/journal/policy.h); left out of compared timelines.
POLICY_KINDS = frozenset((
    "patient", "care-relation", "care-relation-end", "block", "block-lift", "withhold",
    "withhold-lift", "proxy-grant", "proxy-revoke", "ambulance-assignment", "btg-grant",
    "btg-review", "erasure", "policy-params", "audit-batch"))

T0 = time.monotonic()


class TestFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def log(msg):
    print(f"[{time.monotonic() - T0:7.2f}s] {msg}", flush=True)


def scale():
    return float(os.environ.get("CARELOG_CLUSTER_TIME_SCALE", "1"))


def deadline(seconds):
    """A monotonic deadline `seconds` (scaled) from now."""
    return time.monotonic() + seconds * scale()


def poll(what, fn, seconds):
    """Calls fn until it returns something true; fails the test after `seconds` (scaled)."""
    end = deadline(seconds)
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > end:
            raise TestFailure(f"timed out after {seconds * scale():g} s waiting for {what}")
        time.sleep(POLL_S)


def parse_args(extra=None):
    p = argparse.ArgumentParser()
    p.add_argument("--carelogd", required=True)
    p.add_argument("--carelogctl", required=True)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    if extra:
        extra(p)
    args = p.parse_args()
    args.carelogd = os.path.abspath(args.carelogd)
    args.carelogctl = os.path.abspath(args.carelogctl)
    if args.seed is None:
        env_seed = os.environ.get("CARELOG_SEED")
        args.seed = int(env_seed) if env_seed else random.SystemRandom().randrange(1 << 31)
    log(f"seed={args.seed} (rerun with --seed {args.seed} or CARELOG_SEED={args.seed}); "
        f"time scale {scale():g}")
    return args


def run(main):
    """Runs a test's main(); SIGTERM (meson's timeout) unwinds through its finally blocks."""
    def on_term(signum, frame):
        raise TestFailure(f"signal {signum}: stopped (timeout?)")
    signal.signal(signal.SIGTERM, on_term)
    try:
        main()
    except TestFailure as e:
        log(f"FAIL: {e}")
        sys.exit(1)
    log("PASS")
    sys.exit(0)


class Workdir:
    """A temporary directory kept (and named) when the test fails."""

    def __init__(self, name, keep=False):
        # Short paths: ipc:// and the relay's unix socket are limited to 107 bytes.
        self.path = tempfile.mkdtemp(prefix=f"cl-{name}-")
        self.keep = keep

    def done(self, ok):
        if ok and not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            log(f"work dir kept: {self.path}")


def _ports_free(first, count):
    for port in range(first, first + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_base_port(count):
    """A block of `count` free ports below the kernel's ephemeral range (outgoing connections
    take ports from that range and would collide with a listener bound later)."""
    low, high = 10000, 32000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_low = int(f.read().split()[0])
        high = min(high, eph_low - count)
    except (OSError, ValueError, IndexError):
        pass
    rng = random.SystemRandom()  # not the test's seed: parallel runs must not agree
    for _ in range(PORT_TRIES):
        base = rng.randrange(low, high - count)
        if _ports_free(base, count):
            return base
    raise TestFailure(f"no block of {count} free ports in {low}..{high}")


# ---------------------------------------------------------------------- the region

class Cluster:
    """A region made and driven by deploy/local-cluster in a work dir."""

    def __init__(self, args, workdir, voters=3, learners=0, relay=False, settings=(),
                 body_max_bytes=None):
        self.args = args
        self.dir = os.path.join(workdir, "region")
        self.relay = relay
        self.base_port = free_base_port(RELAY_PORTS if relay else NODES_MAX)
        log(f"region {self.dir}: {voters} voters, {learners} learners, base port "
            f"{self.base_port}{', relay' if relay else ''}")
        self.init_argv = ["--voters", str(voters), "--learners", str(learners),
                          "--base-port", str(self.base_port), "--carelogd", args.carelogd,
                          "--carelogctl", args.carelogctl]
        if relay:
            self.init_argv.append("--relay")
        if body_max_bytes:
            self.init_argv += ["--body-max-bytes", str(body_max_bytes)]
        for s in settings:
            self.init_argv += ["--set", s]
        self.lock = threading.Lock()
        self.serving = set()      # nodes the workload may use (not killed, paused, isolated)
        self.nodes = {}           # id -> local-cluster's description
        self.extra_logs = []      # logs of processes started by hand (impostors)
        self.history = None       # set by Workload: dumped by destroy() for the post-mortem
        self.workdir = workdir
        self.cared = set()        # patients with a care relation at every node's organisation

    # ---- local-cluster

    def lc(self, *argv, ok=True):
        cmd = [sys.executable, LOCAL_CLUSTER] + list(argv)
        r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=LC_WAIT_S * scale())
        if ok and r.returncode != 0:
            raise TestFailure(f"local-cluster {' '.join(argv)} exited {r.returncode}: "
                              f"{r.stderr.strip()}")
        if r.returncode == 0 and r.stdout.strip():
            return json.loads(r.stdout)
        return r

    def up(self):
        t = time.monotonic()
        out = self.lc("up", self.dir, *self.init_argv)
        for n in out["nodes"]:
            self.nodes[n["id"]] = n
            self.serving.add(n["id"])
        log(f"up in {time.monotonic() - t:.1f} s: " +
            ", ".join(f"{n['id']}:{n['role']}" for n in out["nodes"]))
        return out["nodes"]

    def ids(self):
        return sorted(self.nodes)

    def endpoint(self, node_id):
        return f"ipc://{self.dir}/node{node_id}/client.sock"

    def node_dir(self, node_id):
        return os.path.join(self.dir, f"node{node_id}")

    def kill(self, node_id):
        self.serving.discard(node_id)
        out = self.lc("kill", self.dir, str(node_id))
        log(f"node {node_id}: SIGKILL (exit {out['nodes'][0]['exit'] if out['nodes'] else '?'})")

    def stop(self, node_id):
        self.serving.discard(node_id)
        self.lc("stop", self.dir, str(node_id))
        log(f"node {node_id}: stopped (SIGTERM, exit 0)")

    def start(self, node_id):
        self.lc("start", self.dir, str(node_id))
        self.serving.add(node_id)
        log(f"node {node_id}: started")

    def pause(self, node_id):
        self.serving.discard(node_id)
        self.lc("pause", self.dir, str(node_id))
        log(f"node {node_id}: paused (SIGSTOP)")

    def resume(self, node_id):
        self.lc("resume", self.dir, str(node_id))
        self.serving.add(node_id)
        log(f"node {node_id}: resumed (SIGCONT)")

    def isolate(self, node_id):
        self.serving.discard(node_id)
        out = self.lc("isolate", self.dir, str(node_id))
        log(f"node {node_id}: isolated ({len(out['cut'])} routes cut)")

    def cut(self, a, b):
        self.lc("cut", self.dir, str(a), str(b))
        log(f"cut {a}->{b}")

    def heal_all(self):
        self.lc("heal-all", self.dir)
        self.serving.update(self.nodes)
        log("relay: every pair healed")

    def relay_status(self):
        return self.lc("relay-status", self.dir)

    def add_learner(self, timeout_s):
        """Adds a learner, waits for its catch-up, gives its organisation the care relations
        the others have, then lets the workload use it."""
        t = time.monotonic()
        out = self.lc("add-learner", self.dir, "--timeout", str(int(timeout_s * scale())))
        n = out["nodes"][0]
        self.nodes[n["id"]] = n
        log(f"learner {n['id']} added and caught up in {time.monotonic() - t:.1f} s")
        self.care(self.cared, node_ids=[n["id"]])
        self.serving.add(n["id"])
        return n["id"]

    def down(self):
        """Stops every node (SIGTERM); each must exit 0."""
        out = self.lc("down", self.dir, ok=False)
        check(not isinstance(out, subprocess.CompletedProcess),
              f"local-cluster down: {getattr(out, 'stderr', '')}")
        self.serving.clear()

    def destroy(self):
        """Best effort teardown after a failure: everything this region started is killed,
        the history so far is kept in the work dir."""
        if self.history is not None:
            path = os.path.join(self.workdir, "history.json")
            self.history.dump(path)
            log(f"history: {path}")
        if not os.path.exists(os.path.join(self.dir, "region.json")):
            return
        r = subprocess.run([sys.executable, LOCAL_CLUSTER, "kill", self.dir],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            log(f"teardown: local-cluster kill: {r.stderr.strip()}")
        pid_file = os.path.join(self.dir, "relay", "relay.pid")
        if os.path.exists(pid_file):
            try:
                with open(pid_file) as f:
                    os.kill(int(f.read().strip()), signal.SIGKILL)
            except (OSError, ValueError):
                pass

    # ---- carelogctl

    def ctl(self, node_id, argv, timeout_s=10, endpoint=None, run_s=None):
        """Runs carelogctl against a node; run_s bounds the whole run (default: its --timeout
        and CTL_WAIT_S)."""
        cmd = [self.args.carelogctl, "--endpoint", endpoint or self.endpoint(node_id),
               "--timeout", str(timeout_s)] + argv
        try:
            return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  timeout=run_s or timeout_s + CTL_WAIT_S)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(cmd, 124, "", "carelogctl did not return in time")

    def status(self, node_id, timeout_s=STATUS_TIMEOUT_S, endpoint=None):
        r = self.ctl(node_id, ["status", "--json"], timeout_s=timeout_s, endpoint=endpoint)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def care(self, patients, node_ids=None, seconds=60):
        """The admin of each node's organisation (every node, or node_ids) adds a care relation
        there for each patient, through that node; then every running node must apply them.
        A relation add that is pending is retried with its request id (on the same node)."""
        patients = sorted(set(patients))
        node_ids = sorted(node_ids if node_ids is not None else self.nodes)
        if not patients or not node_ids:
            return
        t = time.monotonic()
        indexes, errors = [], []
        lock = threading.Lock()

        def one_org(node_id):
            for patient in patients:
                rid = f"care-{node_id}-{patient}"[:64]
                r = None
                end = deadline(seconds)
                for _ in range(CARE_TRIES):
                    r = self.ctl(node_id, ["--actor", ADMIN, "relation", "add", "--patient",
                                           patient, "--request-id", rid, "--json"])
                    if r.returncode == 0 or r.returncode == EXIT_USAGE or \
                            time.monotonic() > end:
                        break
                    time.sleep(RETRY_PAUSE_S)
                with lock:
                    if r.returncode == 0:
                        indexes.append(json.loads(r.stdout)["index"])
                    else:
                        errors.append(f"node {node_id}: relation add exited {r.returncode}: "
                                      f"{r.stderr.strip()[-300:]}")
                        return
        threads = [threading.Thread(target=one_org, args=(i,)) for i in node_ids]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        check(not errors, "care relations: " + "; ".join(errors[:3]))
        self.cared.update(patients)
        top = max(indexes)
        for node_id in sorted(self.nodes):
            if node_id in self.serving or node_id in node_ids:
                self.wait_caught_up(node_id, top, seconds, quiet=True)
        log(f"care relations for {len(patients)} patients at {len(node_ids)} organisations "
            f"(nodes {node_ids}), applied everywhere by index {top}: "
            f"{time.monotonic() - t:.1f} s")

    def append(self, node_id, patient, body, request_id, kind="note", timeout_s=APPEND_TIMEOUT_S,
               endpoint=None):
        """(exit code, reply or None, stderr)."""
        r = self.ctl(node_id, ["--actor", CLINICIAN, "append", "--patient", patient,
                               "--kind", kind, "--body", body, "--request-id", request_id,
                               "--json"], timeout_s=timeout_s, endpoint=endpoint)
        reply = None
        if r.returncode == 0:
            try:
                reply = json.loads(r.stdout)
            except ValueError:
                return 1, None, f"unparsable reply: {r.stdout[:200]}"
        return r.returncode, reply, r.stderr.strip()

    def read(self, node_id, patient, consistency, timeout_s=READ_TIMEOUT_S, endpoint=None,
             min_index=None):
        """A patient's whole timeline: (exit code, entries or None, last page reply or stderr).

        Pages of READ_PAGE_MAX; with linearizable consistency every page is linearizable, so
        the whole is the timeline as of the last page (earlier entries never change)."""
        entries = []
        since = 0
        for _ in range(READ_PAGES_MAX):
            argv = ["--actor", CLINICIAN, "read", "--patient", patient, "--consistency",
                    consistency, "--since-index", str(since), "--limit", str(READ_PAGE_MAX),
                    "--json"]
            if min_index:
                argv += ["--min-index", str(min_index)]
            r = self.ctl(node_id, argv, timeout_s=timeout_s, endpoint=endpoint)
            if r.returncode != 0:
                return r.returncode, None, r.stderr.strip()
            page = json.loads(r.stdout)
            if page.get("withheld"):
                raise TestFailure(f"node {node_id} withheld {page['withheld']} entries: the "
                                  "checks need whole timelines")
            entries += [e for e in page["entries"] if e.get("kind") not in POLICY_KINDS]
            if not page.get("more") or not page["entries"]:
                return 0, entries, page
            since = page["entries"][-1]["index"]
        raise TestFailure("timeline does not end")

    def verify(self, node_id):
        r = self.ctl(node_id, ["verify", "--json"], timeout_s=300)
        return r.returncode, (r.stdout + r.stderr).strip()

    # ---- cluster-wide views

    def statuses(self, ids=None):
        """Every node's status, asked of all at once: every request is audited and each node
        ships its audit rows through the log every 200 ms, so the applied index moves all the
        time and only a simultaneous look can see every node at the same one."""
        ids = list(ids if ids is not None else self.ids())
        out = {}

        def ask(i):
            out[i] = self.status(i)
        threads = [threading.Thread(target=ask, args=(i,)) for i in ids]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return {i: out.get(i) for i in ids}

    def leader(self, among=None):
        """The node that leads and that every answering node of `among` names; else None."""
        among = sorted(among if among is not None else self.serving)
        seen = {i: s for i, s in self.statuses(among).items() if s is not None}
        leaders = [i for i, s in seen.items() if s.get("role") == "leader"]
        if len(leaders) != 1:
            return None
        lead = leaders[0]
        if all(s.get("leader_id") == lead for s in seen.values()):
            return lead
        return None

    def wait_leader(self, seconds=30, among=None, exclude=()):
        def found():
            lead = self.leader([i for i in (among or self.serving) if i not in exclude])
            return lead if lead is not None and lead not in exclude else None
        return poll(f"a leader among {sorted(set(among or self.serving) - set(exclude))}",
                    found, seconds)

    def wait_caught_up(self, node_id, index, seconds=60, quiet=False):
        def applied():
            s = self.status(node_id)
            return s is not None and s.get("applied_index", 0) >= index
        t = time.monotonic()
        poll(f"node {node_id} applying index {index}", applied, seconds)
        if not quiet:
            log(f"node {node_id} applied index {index} after {time.monotonic() - t:.1f} s")

    def converge(self, seconds=90):
        """Every node reports the same applied index and chain head (commit = applied)."""
        last = {}

        def same():
            st = self.statuses()
            last.clear()
            last.update(st)
            if any(s is None for s in st.values()):
                return None
            keys = {(s["applied_index"], s["chain_head"]) for s in st.values()}
            if len(keys) != 1 or any(s["commit_index"] != s["applied_index"]
                                     for s in st.values()):
                return None
            return st
        try:
            st = poll("every node at the same applied index and chain head", same, seconds)
        except TestFailure as e:
            view = {i: (s and (s.get("role"), s.get("applied_index"), s.get("commit_index"),
                               s.get("chain_head", "")[:16])) for i, s in last.items()}
            raise TestFailure(f"{e}; last seen: {view}")
        any_s = next(iter(st.values()))
        log(f"converged: {len(st)} nodes at applied index {any_s['applied_index']}, chain head "
            f"{any_s['chain_head'][:16]}")
        return st

    def transport_dropped(self, ids=None):
        """Sum of the dropped-frame counters in `status` (None when status has none)."""
        total, found = 0, False
        for s in self.statuses(ids).values():
            t = (s or {}).get("transport")
            if isinstance(t, dict):
                found = True
                total += sum(v for k, v in t.items() if k.startswith("dropped") and
                             isinstance(v, int))
        return total if found else None

    # ---- logs

    def all_logs(self):
        text = ""
        paths = [os.path.join(self.node_dir(i), "carelogd.log") for i in self.ids()]
        for path in paths + self.extra_logs:
            try:
                with open(path, "rb") as f:
                    text += f.read().decode(errors="replace")
            except OSError:
                pass
        return text

    def last_log(self, node_id, lines=20):
        try:
            with open(os.path.join(self.node_dir(node_id), "carelogd.log"), "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ---- the end of every test

    def final_checks(self, workload, history, workdir):
        """Quiesce, then every check a test ends with (see the module doc)."""
        workload.stop()
        check(not workload.errors, "workload: " + "; ".join(workload.errors[:5]))
        self.serving.update(self.nodes)
        lead = self.wait_leader(60)
        log(f"final checks; leader {lead}")
        workload.resolve_pending(seconds=120)
        patients = workload.patients
        for patient in patients:
            for node_id in self.ids():
                workload.read_once(node_id, patient, process=f"final@{node_id}",
                                   consistency="linearizable", must_succeed=True)
        path = os.path.join(workdir, "history.json")
        history.dump(path)
        res = checker.check(history.ops())
        log(res.explain().splitlines()[0])
        check(res.ok, f"{res.explain()}\n(history: {path})")
        st = self.converge()
        # Every node serves the same timeline (local reads), and every acknowledged append
        # is there with the index and id it was acknowledged with.
        acked = {op["value"]: op for op in history.ops() if op["type"] == "append" and
                 op["result"] == "ok"}
        for patient in patients:
            views = {}
            for node_id in self.ids():
                rc, entries, err = self.read(node_id, patient, "local")
                check(rc == 0, f"local read on node {node_id}: exit {rc}: {err}")
                views[node_id] = [(e["index"], e["id"], e["request_id"]) for e in entries]
            first = views[self.ids()[0]]
            for node_id, v in views.items():
                check(v == first, f"node {node_id} serves a different timeline than node "
                      f"{self.ids()[0]} for a patient ({len(v)} vs {len(first)} entries)")
            for index, entry_id, rid in first:
                a = acked.get(rid)
                if a is not None and a.get("index") is not None:
                    check(a["index"] == index and a["id"] == entry_id,
                          f"request {rid} was acknowledged as index {a['index']} id "
                          f"{a['id']}, stored as index {index} id {entry_id}")
        for node_id in self.ids():
            rc, out = self.verify(node_id)
            check(rc == 0, f"verify on node {node_id} exited {rc}: {out[-2000:]}")
        log(f"verify ok on {len(st)} nodes; {len(acked)} acknowledged appends, "
            f"{history.count('read', 'ok')} linearizable reads checked")
        self.down()
        text = self.all_logs()
        leaked = sorted({s for s in workload.secrets() if s in text})
        check(not leaked, f"node logs contain patient data: {leaked[:5]}")


# ---------------------------------------------------------------------- history and load

class History:
    """Every operation of a test: start, end, outcome (checker.py's format)."""

    def __init__(self):
        self.lock = threading.Lock()
        self._ops = []

    def begin(self, type_, patient, process, **fields):
        op = {"process": process, "type": type_, "patient": patient,
              "start_s": time.monotonic(), "end_s": None, "result": "pending"}
        op.update(fields)
        with self.lock:
            self._ops.append(op)
        return op

    def finish(self, op, result, **fields):
        with self.lock:
            op["end_s"] = time.monotonic()
            op["result"] = result
            op.update(fields)

    def ops(self):
        with self.lock:
            return [dict(op) for op in self._ops]

    def count(self, type_, result):
        with self.lock:
            return sum(1 for op in self._ops if op["type"] == type_ and op["result"] == result)

    def acked_since(self, t):
        with self.lock:
            return sum(1 for op in self._ops if op["type"] == "append" and
                       op["result"] == "ok" and op["end_s"] > t)

    def dump(self, path):
        ops = self.ops()
        for op in ops:  # readable times: seconds since the test started
            op["start_s"] = round(op["start_s"] - T0, 6)
            if op["end_s"] is not None:
                op["end_s"] = round(op["end_s"] - T0, 6)
        with open(path, "w") as f:
            json.dump({"ops": ops}, f, indent=0)


class Workload:
    """Writer and reader threads on the cluster's serving nodes, recorded in a History.

    Writers append with their own request ids through a serving node picked per append; an
    append that is not acknowledged (exit 3 pending, exit 1, the node gone) is retried with the
    same request id on the same node (see drive_append) until acknowledged or until the workload stops and STOP_GRACE_S passes (it stays pending;
    resolve_pending retries it at the end). Readers read whole timelines linearizably.
    """

    STOP_GRACE_S = 20
    JOIN_S = 120

    def __init__(self, cluster, history, seed, tag, writers=4, readers=2, patients=6):
        self.cluster = cluster
        self.history = history
        cluster.history = history
        self.seed = seed
        self.tag = tag
        self.patients = [f"ctest-{tag}-{seed % 100000:05d}-{p:02d}" for p in range(patients)]
        self.stop_evt = threading.Event()
        self.stop_at = None
        self.errors = []
        self.bodies = set()
        self.extra_secrets = set()  # further patient ids and bodies the logs must not hold
        self.lock = threading.Lock()
        self.threads = ([threading.Thread(target=self._guard, args=(self._writer, w),
                                          name=f"w{w}", daemon=True) for w in range(writers)] +
                        [threading.Thread(target=self._guard, args=(self._reader, r),
                                          name=f"r{r}", daemon=True) for r in range(readers)])

    def start(self):
        self.cluster.care(self.patients)
        for t in self.threads:
            t.start()
        log(f"workload: {sum(1 for t in self.threads if t.name[0] == 'w')} writers, "
            f"{sum(1 for t in self.threads if t.name[0] == 'r')} readers, "
            f"{len(self.patients)} patients")
        return self

    def _guard(self, fn, n):
        try:
            fn(n)
        except Exception as e:  # a thread cannot fail the test: final_checks reports it
            with self.lock:
                self.errors.append(f"{threading.current_thread().name}: {e!r}")

    def _pick(self, rng):
        nodes = sorted(self.cluster.serving)
        return rng.choice(nodes) if nodes else None

    def _writer(self, w):
        rng = random.Random(f"{self.seed}-w{w}")
        n = 0
        while not self.stop_evt.is_set():
            n += 1
            rid = f"{self.tag}-{self.seed:x}-w{w:02d}-{n:05d}"
            patient = rng.choice(self.patients)
            body = f"ctest {self.tag} body w{w} n{n}: synthetic observation"
            with self.lock:
                self.bodies.add(body)
            op = self.history.begin("append", patient, f"w{w}", value=rid, body=body,
                                    attempts=0)
            self.drive_append(op, rng)

    def drive_append(self, op, rng, give_up_at=None, stopping=True):
        """Tries op's append until acknowledged or given up. Every try goes to the same node:
        exactly-once holds per request id within an organisation (the request key is the
        node's organisation and the request id), and a clinical app retries through its own
        organisation's node; a retry elsewhere would be another organisation's entry."""
        last = ""
        while True:
            if op.get("node") is None:
                op["node"] = self._pick(rng)
            node = op["node"]
            if node is not None:
                op["attempts"] += 1
                t = time.monotonic()
                rc, reply, err = self.cluster.append(node, op["patient"], op["body"], op["value"])
                took = time.monotonic() - t
                if took > SLOW_S:
                    log(f"slow append {op['value']} on node {node}: exit {rc} after {took:.1f} s"
                        f"{': ' + err[-160:] if err else ''}")
                if rc == 0 and reply.get("state") == "committed":
                    if reply.get("request_id") != op["value"]:
                        raise TestFailure(f"reply for {op['value']} names {reply.get('request_id')}")
                    self.history.finish(op, "ok", index=reply["index"], id=reply["id"],
                                        duplicate=reply.get("duplicate"))
                    return True
                if rc == EXIT_USAGE:
                    raise TestFailure(f"carelogctl append: bad usage: {err}")
                last = f"node {node}: exit {rc}: {err[-200:]}"
            now = time.monotonic()
            if give_up_at is not None and now > give_up_at:
                break
            if (stopping and self.stop_at is not None and
                    now > self.stop_at + self.STOP_GRACE_S * scale()):
                break
            time.sleep(RETRY_PAUSE_S)
        self.history.finish(op, "pending", last_error=last)
        return False

    def _reader(self, r):
        rng = random.Random(f"{self.seed}-r{r}")
        while not self.stop_evt.is_set():
            node = self._pick(rng)
            if node is None:
                time.sleep(RETRY_PAUSE_S)
                continue
            self.read_once(node, rng.choice(self.patients), process=f"r{r}")

    def read_once(self, node_id, patient, process, consistency="linearizable",
                  must_succeed=False, timeout_s=READ_TIMEOUT_S):
        """One whole-timeline read recorded in the history; returns (rc, entries)."""
        op = self.history.begin("read", patient, process, consistency=consistency, node=node_id)
        rc, entries, info = self.cluster.read(node_id, patient, consistency, timeout_s=timeout_s)
        took = time.monotonic() - op["start_s"]
        if took > SLOW_S:
            log(f"slow {consistency} read on node {node_id}: exit {rc} after {took:.1f} s"
                f"{': ' + str(info)[-160:] if rc else ''}")
        if rc == 0:
            self.history.finish(op, "ok", read_value=[e["request_id"] for e in entries],
                                applied_index=info.get("applied_index"),
                                stale=info.get("stale"))
        else:
            self.history.finish(op, "fail", exit=rc, error=str(info)[-200:])
            if must_succeed:
                raise TestFailure(f"{consistency} read on node {node_id} exited {rc}: {info}")
        return rc, entries

    def wait_acks(self, count, seconds, since=None, what=None):
        """Waits until `count` appends were acknowledged (after monotonic time `since`)."""
        since = T0 if since is None else since
        t = time.monotonic()
        poll(what or f"{count} acknowledged appends", lambda: self.history.acked_since(since)
             >= count or self.errors, seconds)
        check(not self.errors, "workload: " + "; ".join(self.errors[:5]))
        took = time.monotonic() - t
        log(f"{what or f'{count} acknowledged appends'}: {took:.2f} s")
        return took

    def stop(self):
        log("workload stopping")
        self.stop_at = time.monotonic()
        self.stop_evt.set()
        for t in self.threads:
            t.join(timeout=self.JOIN_S * scale())
            check(not t.is_alive(), f"workload thread {t.name} did not stop")
        log(f"workload stopped: {self.history.count('append', 'ok')} appends acknowledged, "
            f"{self.history.count('append', 'pending')} pending, "
            f"{self.history.count('read', 'ok')} reads ok, "
            f"{self.history.count('read', 'fail')} reads failed")

    def resolve_pending(self, seconds):
        """Retries every pending append with its own request id until acknowledged."""
        pending = [op for op in self.history._ops if op["type"] == "append" and
                   op["result"] != "ok"]
        rng = random.Random(f"{self.seed}-resolve")
        end = deadline(seconds)
        for op in pending:
            op["result"] = "pending"
            t = time.monotonic()
            if not self.drive_append(op, rng, give_up_at=end, stopping=False):
                raise TestFailure(f"pending append {op['value']} never committed on retry: "
                                  f"{op.get('last_error')}")
            log(f"pending append {op['value']} (node {op['node']}, first tried "
                f"{t - op['start_s']:.1f} s ago) committed after {time.monotonic() - t:.1f} s "
                f"of retries{' (a duplicate: it had committed before)' if op.get('duplicate') else ''}")
        if pending:
            log(f"{len(pending)} pending appends retried with their request ids: all committed")

    def secrets(self):
        with self.lock:
            return set(self.patients) | set(self.bodies) | self.extra_secrets


# ---------------------------------------------------------------------- hand-made nodes

class Rogue:
    """A carelogd this test configures by hand (impostors, wrong clusters): own dir, own INI."""

    def __init__(self, cluster, name, node_id, key_dir, cluster_id, genesis, listen_port,
                 extra=""):
        self.cluster = cluster
        self.dir = os.path.join(os.path.dirname(cluster.dir), name)
        os.makedirs(self.dir, exist_ok=True)
        self.node_id = node_id
        self.endpoint = f"ipc://{self.dir}/client.sock"
        self.config = os.path.join(self.dir, "carelogd.ini")
        self.log_path = os.path.join(self.dir, "carelogd.log")
        cluster.extra_logs.append(self.log_path)
        with open(self.config, "w") as f:
            f.write(f"""; a node made by hand by a cluster test
[node]
id = {node_id}
cluster_id = {cluster_id}
data_dir = {self.dir}/data
key_file = {key_dir}/node.key
genesis_file = {genesis}
actor_default = ctest-rogue

[client]
endpoint = {self.endpoint}

[storage]
map_size_bytes = 1GiB

[replication]
listen = tcp://127.0.0.1:{listen_port}
{extra}""")
        self.proc = None
        self.log_file = None

    def start(self):
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.cluster.args.carelogd, "--config", self.config],
                                     stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        return self

    def exited(self):
        return self.proc.poll()

    def status(self):
        return self.cluster.status(None, endpoint=self.endpoint)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log_file:
            self.log_file.close()
            self.log_file = None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.log_file:
            self.log_file.close()
            self.log_file = None


def keygen(carelogctl, out_dir):
    r = subprocess.run([carelogctl, "keygen", "--out", out_dir, "--json"], capture_output=True,
                       text=True, timeout=CTL_WAIT_S)
    check(r.returncode == 0, f"keygen {out_dir}: {r.stderr}")
    return json.loads(r.stdout)
