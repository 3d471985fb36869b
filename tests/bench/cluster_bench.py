#!/usr/bin/env python3
"""Replicated-region benchmark: 3 carelog voters vs 3 etcd members, same load, one run.

Not part of CI or `meson test --benchmark`: run it by hand (figures in BENCHMARKS.md,
section "Replicated region (3 voters) vs etcd").

  tests/bench/cluster_bench.py [--counts 1,16,64] [--repeat R] [--carelog-build DIR]
                               [--only both|etcd|carelog] [--no-extras] [--keep]

For each repeat and each client count C (interleaved, so machine noise hits both alike):
  etcd     a fresh 3-member etcd cluster (Debian's etcd-server, defaults: WAL fsync on every
           Ready, --snapshot-count 100000, 100 ms heartbeat, 1000 ms election timeout) on
           loopback; tests/bench/etcd/loadgen.go (built here, in a temp dir, GOPATH mode
           against golang-etcd-server-dev) puts M values of B bytes under unique keys from C
           goroutines sharing one client, sequential synchronous puts each, against the
           leader's client URL.
  carelog  a fresh 3-voter region (`deploy/local-cluster up DIR --voters 3`);
           `carelogctl bench append --clients C --count M --body-bytes B` against the leader's
           endpoint; before and after, every node's `status --json` counters
           `verified_signatures` and `syncs` (per node: signatures verified during the run and
           synced write transactions per second; "n/a" where a node does not report them).
M is --ops-single for one client and --ops otherwise (defaults 2,000 and 50,000, as in the
single-node table). The nodes deny by default (docs/access.md): before loading a region, the
admin of every node's organisation adds a care relation for the benchmark's patients there
(`carelogctl --actor bench-admin:admin relation add`), and every append acts as
bench-clinician (physician). Then, unless --no-extras, on carelog only:
  failover  kill -9 the leader while 4 client loops append through the two other nodes;
            time to a new leader (status polls) and to the first append acknowledged that was
            sent after the kill; --failover-trials times, the killed node restarted between.
  learner   a region holding --learner-entries K entries of B bytes gets a learner (node 4);
            time until its applied index reaches the commit index at the add: entries/s and
            MB/s (bodies, and the learner's data dir), its VmRSS / VmHWM after catching up.

Every process it starts (etcd members, loadgen, carelogctl, carelogd via local-cluster) is
stopped on exit, error or Ctrl-C. Exit 0 when every requested part ran, 1 otherwise (what
could not run is reported as "n/a" with the reason).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCAL_CLUSTER = os.path.join(TOP, "deploy", "local-cluster")
LOADGEN_SRC = os.path.join(TOP, "tests", "bench", "etcd", "loadgen.go")
GOPATH_SYSTEM = "/usr/share/gocode"
ETCD_BIN = "etcd"

MEMBERS = 3                 # voters / etcd members
POLL_S = 0.02               # pause between polls (the poll is the synchronisation)
READY_S = 60                # bound on a cluster becoming ready (leader elected, serving)
STOP_S = 20                 # bound on a process exiting after SIGTERM
BENCH_TIMEOUT_S = 3600      # bound on one load run
CTL_TIMEOUT_S = 30          # bound on one carelogctl status/append
BUILD_TIMEOUT_S = 900       # bound on building loadgen
FAILOVER_LOOPS = 4          # client loops appending during a failover trial
FAILOVER_WARM_ACKS = 20     # acknowledged appends before the kill
FAILOVER_BOUND_S = 30       # bound on waiting for the first commit after the kill
CATCHUP_BOUND_S = 1800      # bound on a learner catching up
FILL_CLIENTS = 64           # clients filling the region before a learner joins
ADMIN = "bench-admin:admin"             # adds the care relations
CLINICIAN = "bench-clinician:physician" # appends
BENCH_PATIENTS = ("bench-patient", "bench-failover")  # bench append's default; failover loops


class BenchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------- process registry

class Procs:
    """Every process this script starts, so that one cleanup stops them all."""

    def __init__(self):
        self.popens = []           # Popen objects, each in its own session
        self.carelog_dirs = []     # regions started through deploy/local-cluster
        self.lock = threading.Lock()

    def popen(self, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        with self.lock:
            self.popens.append(p)
        return p

    def run(self, argv, timeout_s, **kw):
        """subprocess.run through the registry: killed on timeout, error and Ctrl-C."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        p = self.popen(argv, text=True, **kw)
        try:
            out, err = p.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop_popen(p, 0)
            raise BenchError(f"{os.path.basename(argv[0])} took more than {timeout_s} s")
        finally:
            if p.poll() is None:
                stop_popen(p, 0)
            with self.lock:
                if p in self.popens:
                    self.popens.remove(p)
        return subprocess.CompletedProcess(argv, p.returncode, out, err)

    def forget(self, p):
        with self.lock:
            if p in self.popens:
                self.popens.remove(p)

    def cleanup(self):
        with self.lock:
            popens = list(self.popens)
            dirs = list(self.carelog_dirs)
        for d in dirs:
            carelog_down(d)
        for p in popens:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in popens:
            stop_popen(p, STOP_S)


def stop_popen(p, grace_s):
    """SIGTERM (if grace_s) then SIGKILL p's process group; waits for p."""
    if p.poll() is None and grace_s > 0:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


PROCS = Procs()


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ------------------------------------------------------------------------------- helpers

def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def need_ports(ports, what):
    busy = [p for p in ports if not port_free(p)]
    if busy:
        raise BenchError(f"{what}: ports in use on 127.0.0.1: {busy} (choose another base port)")


def http(url, data=None, timeout_s=2):
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=timeout_s) as r:
        return r.read().decode()


def du_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def proc_status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return None


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def find_key(obj, key):
    """The value of `key` at the top of a status reply, or anywhere below it."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = find_key(v, key)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = find_key(v, key)
            if found is not None:
                return found
    return None


# --------------------------------------------------------------------------------- etcd

def build_loadgen(tmp):
    """Builds tests/bench/etcd/loadgen.go into tmp (never into the repository)."""
    out = os.path.join(tmp, "loadgen")
    env = dict(os.environ)
    env.update(GO111MODULE="off", GOPATH=f"{tmp}/gopath:{GOPATH_SYSTEM}",
               GOCACHE=os.path.join(tmp, "gocache"), GOFLAGS="")
    if not os.path.isdir(os.path.join(GOPATH_SYSTEM, "src/go.etcd.io/etcd/clientv3")):
        raise BenchError("no go.etcd.io/etcd/clientv3 under /usr/share/gocode/src "
                         "(apt-get install golang-etcd-server-dev)")
    log("building loadgen (GOPATH mode, Debian's etcd 3.4 client sources)...")
    r = PROCS.run(["go", "build", "-o", out, LOADGEN_SRC], BUILD_TIMEOUT_S, env=env, cwd=tmp)
    if r.returncode != 0:
        raise BenchError(f"go build loadgen failed:\n{r.stderr}")
    return out


class EtcdCluster:
    def __init__(self, tmp, base_port, tag):
        self.dir = tempfile.mkdtemp(prefix=f"etcd-{tag}-", dir=tmp)
        self.client_ports = [base_port + i for i in range(1, MEMBERS + 1)]
        self.peer_ports = [base_port + 100 + i for i in range(1, MEMBERS + 1)]
        self.procs = []
        self.token = f"bench-{os.getpid()}-{tag}"

    def client_url(self, i):
        return f"http://127.0.0.1:{self.client_ports[i]}"

    def start(self):
        need_ports(self.client_ports + self.peer_ports, "etcd")
        initial = ",".join(f"m{i + 1}=http://127.0.0.1:{p}" for i, p in enumerate(self.peer_ports))
        for i in range(MEMBERS):
            name = f"m{i + 1}"
            peer = f"http://127.0.0.1:{self.peer_ports[i]}"
            logf = open(os.path.join(self.dir, f"{name}.log"), "wb")
            argv = [ETCD_BIN, "--name", name, "--data-dir", os.path.join(self.dir, name),
                    "--listen-client-urls", self.client_url(i),
                    "--advertise-client-urls", self.client_url(i),
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", initial, "--initial-cluster-token", self.token,
                    "--initial-cluster-state", "new", "--logger", "zap",
                    "--log-outputs", "stderr"]
            self.procs.append(PROCS.popen(argv, stdout=logf, stderr=subprocess.STDOUT))
            logf.close()
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            for i, p in enumerate(self.procs):
                if p.poll() is not None:
                    raise BenchError(f"etcd m{i + 1} exited with {p.returncode}: "
                                     f"{self.last_log(i)}")
            if self.leader_index() is not None:
                return
            time.sleep(POLL_S)
        raise BenchError("etcd cluster did not elect a leader in time")

    def last_log(self, i, lines=5):
        with open(os.path.join(self.dir, f"m{i + 1}.log"), "rb") as f:
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])

    def status(self, i):
        """/v3/maintenance/status through the gRPC gateway: (member_id, leader_id) or None."""
        try:
            s = json.loads(http(self.client_url(i) + "/v3/maintenance/status", b"{}"))
            return s["header"]["member_id"], s["leader"]
        except (OSError, ValueError, KeyError):
            return None

    def leader_index(self):
        statuses = [self.status(i) for i in range(MEMBERS)]
        if any(s is None for s in statuses):
            return None
        for i, (member, leader) in enumerate(statuses):
            if member == leader:
                return i
        return None

    def fsync_counts(self):
        """Per member: (WAL fsyncs, backend commits) from /metrics, or None."""
        out = []
        for i in range(MEMBERS):
            try:
                text = http(self.client_url(i) + "/metrics")
            except OSError:
                out.append(None)
                continue
            wal = re.search(r"^etcd_disk_wal_fsync_duration_seconds_count (\d+)", text, re.M)
            be = re.search(r"^etcd_disk_backend_commit_duration_seconds_count (\d+)", text, re.M)
            out.append((int(wal.group(1)) if wal else None, int(be.group(1)) if be else None))
        return out

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            stop_popen(p, STOP_S)
            PROCS.forget(p)
        self.procs = []


def run_etcd_point(args, tmp, loadgen, clients, count, tag):
    c = EtcdCluster(tmp, args.etcd_base_port, tag)
    try:
        c.start()
        leader = c.leader_index()
        before = c.fsync_counts()
        r = PROCS.run([loadgen, "-endpoints", c.client_url(leader), "-clients", str(clients),
                       "-count", str(count), "-body-bytes", str(args.body_bytes),
                       "-prefix", f"bench-{tag}"], BENCH_TIMEOUT_S)
        after = c.fsync_counts()
        if not r.stdout.strip():
            raise BenchError(f"loadgen printed nothing (exit {r.returncode}): {r.stderr}")
        result = json.loads(r.stdout.strip().splitlines()[-1])
        if result.get("errors", 0):
            raise BenchError(f"loadgen reported errors: {result}")
        secs = result["seconds"]
        syncs = []
        for b, a in zip(before, after):
            if b is None or a is None or b[0] is None or a[0] is None:
                syncs.append(None)
            else:
                syncs.append(((a[0] - b[0]) / secs,
                              None if a[1] is None or b[1] is None else (a[1] - b[1]) / secs))
        result["nodes"] = [{"member": f"m{i + 1}", "leader": i == leader,
                            "wal_fsyncs_per_s": s[0] if s else None,
                            "backend_commits_per_s": s[1] if s else None}
                           for i, s in enumerate(syncs)]
        return result
    finally:
        c.stop()
        if not args.keep:
            shutil.rmtree(c.dir, ignore_errors=True)


# ------------------------------------------------------------------------------ carelog

def carelog_bins(build):
    ctl = os.path.join(build, "node", "ctl", "carelogctl")
    daemon = os.path.join(build, "node", "daemon", "carelogd")
    for b in (ctl, daemon):
        if not os.access(b, os.X_OK):
            raise BenchError(f"no {b} (build it: meson setup {build} --buildtype=debugoptimized"
                             f" && ninja -C {build})")
    return ctl


def carelog_down(region):
    """Stops a region: local-cluster down, then SIGKILL any node (by its pid file) still up."""
    try:
        subprocess.run([LOCAL_CLUSTER, "down", region], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=STOP_S * 4)
    except subprocess.TimeoutExpired:
        pass
    for name in sorted(os.listdir(region)) if os.path.isdir(region) else []:
        pid_file = os.path.join(region, name, "carelogd.pid")
        if not name.startswith("node") or not os.path.exists(pid_file):
            continue
        try:
            pid = int(open(pid_file).read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except (ValueError, OSError):
            continue
        if b"carelogd" in cmdline and region.encode() in cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class CarelogRegion:
    def __init__(self, args, tmp, tag, voters=MEMBERS):
        self.args = args
        # Short path: ipc:// socket paths are limited to 107 bytes.
        self.dir = tempfile.mkdtemp(prefix=f"cl-{tag}-", dir=tmp)
        self.voters = voters
        self.ctl_bin = carelog_bins(args.carelog_build)

    def endpoint(self, node_id):
        return f"ipc://{self.dir}/node{node_id}/client.sock"

    def node_ids(self):
        return sorted(int(n[4:]) for n in os.listdir(self.dir)
                      if n.startswith("node") and n[4:].isdigit()
                      and os.path.exists(os.path.join(self.dir, n, "carelogd.ini")))

    def pid(self, node_id):
        try:
            return int(open(os.path.join(self.dir, f"node{node_id}", "carelogd.pid")).read())
        except (OSError, ValueError):
            return None

    def up(self):
        ports = [self.args.carelog_base_port + i for i in range(self.voters + 1)]
        need_ports(ports, "carelog")
        with PROCS.lock:
            PROCS.carelog_dirs.append(self.dir)
        r = PROCS.run([LOCAL_CLUSTER, "up", self.dir, "--voters", str(self.voters),
                       "--base-port", str(self.args.carelog_base_port),
                       "--bin-dir", self.args.carelog_build], READY_S * 4)
        if r.returncode != 0:
            raise BenchError(f"deploy/local-cluster up --voters {self.voters} failed "
                             f"(exit {r.returncode}): {r.stderr.strip()}")
        leader = self.wait_leader()
        self.care()
        return leader

    def down(self):
        carelog_down(self.dir)
        with PROCS.lock:
            if self.dir in PROCS.carelog_dirs:
                PROCS.carelog_dirs.remove(self.dir)
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def ctl(self, node_id, argv, timeout_s=CTL_TIMEOUT_S, ctl_timeout="5"):
        return PROCS.run([self.ctl_bin, "--endpoint", self.endpoint(node_id), "--timeout",
                          ctl_timeout] + argv, timeout_s)

    def status(self, node_id, ctl_timeout="1"):
        try:
            r = self.ctl(node_id, ["status", "--json"], ctl_timeout=ctl_timeout)
        except BenchError:
            return None
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def wait_leader(self, exclude=(), min_term=0, bound_s=READY_S):
        """Polls every node until one (not in exclude) says it leads at term >= min_term."""
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            for n in self.node_ids():
                if n in exclude:
                    continue
                s = self.status(n)
                if s and s.get("role") == "leader" and s.get("term", 0) >= min_term:
                    return n, s
            time.sleep(POLL_S)
        raise BenchError(f"no carelog leader within {bound_s} s")

    def wait_applied(self, index, bound_s=READY_S):
        """Polls until every node has applied `index` (the counters then cover every entry)."""
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            applied = [(self.status(n) or {}).get("applied_index") for n in self.node_ids()]
            if all(isinstance(a, int) and a >= index for a in applied):
                return True
            time.sleep(POLL_S)
        log(f"carelog: not every node applied index {index} within {bound_s} s")
        return False

    def care(self, patients=BENCH_PATIENTS):
        """A care relation for each patient at every node's organisation, through that node;
        returns once every node has applied them."""
        top = 0
        for n in self.node_ids():
            for patient in patients:
                r = self.ctl(n, ["--actor", ADMIN, "relation", "add", "--patient", patient,
                                 "--json"], ctl_timeout="10")
                if r.returncode != 0:
                    raise BenchError(f"relation add on node {n} failed (exit {r.returncode}): "
                                     f"{r.stderr.strip()}")
                top = max(top, json.loads(r.stdout)["index"])
        if not self.wait_applied(top):
            raise BenchError("the care relations did not reach every node")

    def counters(self):
        """Per node: {verified_signatures, syncs} (None where not reported)."""
        out = {}
        for n in self.node_ids():
            s = self.status(n, ctl_timeout="5") or {}
            out[n] = {k: find_key(s, k) for k in ("verified_signatures", "syncs")}
        return out


def run_carelog_point(args, tmp, clients, count, tag):
    region = CarelogRegion(args, tmp, tag)
    try:
        leader, _ = region.up()
        before = region.counters()
        r = region.ctl(leader, ["--actor", CLINICIAN, "bench", "append", "--clients",
                                str(clients), "--count", str(count), "--body-bytes",
                                str(args.body_bytes), "--json"],
                       timeout_s=BENCH_TIMEOUT_S, ctl_timeout="30")
        commit = (region.status(leader, ctl_timeout="5") or {}).get("commit_index")
        if isinstance(commit, int):
            region.wait_applied(commit)
        after = region.counters()
        if not r.stdout.strip():
            raise BenchError(f"carelogctl bench printed nothing (exit {r.returncode}): "
                             f"{r.stderr.strip()}")
        result = json.loads(r.stdout)
        if result.get("errors", 0):
            raise BenchError(f"carelogctl bench reported errors: {result} {r.stderr.strip()}")
        secs = result["seconds"]
        nodes = []
        for n in sorted(after):
            b, a = before.get(n, {}), after[n]
            row = {"node": n, "leader": n == leader}
            for k in ("verified_signatures", "syncs"):
                ok = isinstance(a.get(k), int) and isinstance(b.get(k), int)
                row[k] = a[k] - b[k] if ok else None
            row["syncs_per_s"] = row["syncs"] / secs if row["syncs"] is not None else None
            nodes.append(row)
        result["nodes"] = nodes
        return result
    finally:
        region.down()


# ------------------------------------------------------------------------------ failover

def failover_trials(args, tmp):
    """kill -9 the leader under a light append load; returns one dict per trial."""
    region = CarelogRegion(args, tmp, "failover")
    trials = []
    try:
        leader, st = region.up()
        for trial in range(args.failover_trials):
            survivors = [n for n in region.node_ids() if n != leader]
            acks = []          # (sent, done, ok) per append
            acks_lock = threading.Lock()
            stop = threading.Event()

            def loop(node_id, k):
                seq = 0
                while not stop.is_set():
                    seq += 1
                    t_sent = time.monotonic()
                    try:
                        r = region.ctl(node_id, ["--actor", CLINICIAN, "append", "--patient",
                                                 "bench-failover",
                                                 "--kind", "note", "--body",
                                                 f"failover trial {trial} loop {k} seq {seq}",
                                                 "--json"], ctl_timeout="0.5")
                        ok = r.returncode == 0
                    except BenchError:
                        ok = False
                    with acks_lock:
                        acks.append((t_sent, time.monotonic(), ok))

            threads = [threading.Thread(target=loop, args=(survivors[k % len(survivors)], k),
                                        daemon=True) for k in range(FAILOVER_LOOPS)]
            for t in threads:
                t.start()
            try:
                deadline = time.monotonic() + READY_S
                while time.monotonic() < deadline:
                    with acks_lock:
                        if sum(1 for a in acks if a[2]) >= FAILOVER_WARM_ACKS:
                            break
                    time.sleep(POLL_S)
                else:
                    raise BenchError("failover: appends through followers are not acknowledged "
                                     "(forwarding to the leader)")
                old_term = st.get("term", 0)
                t_kill = time.monotonic()
                os.kill(region.pid(leader), signal.SIGKILL)
                new_leader, st = region.wait_leader(exclude=(leader,), min_term=old_term + 1,
                                                    bound_s=FAILOVER_BOUND_S)
                t_leader = time.monotonic()
                t_commit = None
                deadline = time.monotonic() + FAILOVER_BOUND_S
                while t_commit is None and time.monotonic() < deadline:
                    with acks_lock:
                        done = [a[1] for a in acks if a[2] and a[0] > t_kill]
                    if done:
                        t_commit = min(done)
                    else:
                        time.sleep(POLL_S)
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=CTL_TIMEOUT_S)
            if t_commit is None:
                raise BenchError(f"failover: no append acknowledged {FAILOVER_BOUND_S} s "
                                 "after the kill")
            trials.append({"killed": leader, "new_leader": new_leader,
                           "new_leader_s": t_leader - t_kill, "first_commit_s": t_commit - t_kill})
            log(f"failover trial {trial + 1}: killed node {leader}, node {new_leader} leads after "
                f"{t_leader - t_kill:.3f} s, first new commit after {t_commit - t_kill:.3f} s")
            r = PROCS.run([LOCAL_CLUSTER, "start", region.dir, str(leader)], READY_S * 4)
            if r.returncode != 0:
                raise BenchError(f"local-cluster start {leader} failed: {r.stderr.strip()}")
            leader = new_leader
        return trials
    finally:
        region.down()


# ------------------------------------------------------------------------------- learner

def learner_catchup(args, tmp):
    """Fills a region with K entries, then `deploy/local-cluster add-learner` (new node, started
    empty, added on the leader, waited for) while this polls the learner's applied index."""
    region = CarelogRegion(args, tmp, "learner")
    try:
        leader, _ = region.up()
        log(f"learner: filling the region with {args.learner_entries} entries...")
        t0 = time.monotonic()
        r = region.ctl(leader, ["--actor", CLINICIAN, "bench", "append", "--clients",
                                str(FILL_CLIENTS), "--count", str(args.learner_entries),
                                "--body-bytes", str(args.body_bytes), "--json"], timeout_s=BENCH_TIMEOUT_S, ctl_timeout="30")
        if r.returncode != 0:
            raise BenchError(f"learner fill failed: {r.stderr.strip()}")
        fill_s = time.monotonic() - t0
        target = (region.status(leader, ctl_timeout="5") or {}).get("commit_index")
        if not isinstance(target, int):
            raise BenchError("learner: leader reports no commit_index")
        new_id = max(region.node_ids()) + 1
        log(f"learner: adding node {new_id} to a region at commit index {target}...")
        t_add = time.monotonic()
        add = PROCS.popen([LOCAL_CLUSTER, "add-learner", region.dir, "--id", str(new_id),
                           "--timeout", str(CATCHUP_BOUND_S)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t_serve, t_caught, applied, hwm = None, None, 0, 0
        deadline = t_add + CATCHUP_BOUND_S
        while t_caught is None and time.monotonic() < deadline:
            s = region.status(new_id) if new_id in region.node_ids() else None
            now = time.monotonic()
            pid = region.pid(new_id)
            if pid:
                hwm = max(hwm, proc_status_kib(pid, "VmHWM") or 0)
            if s is not None:
                t_serve = t_serve or now
                if isinstance(s.get("applied_index"), int):
                    applied = s["applied_index"]
                    if applied >= target:
                        t_caught = now
                        break
            if add.poll() is not None and add.returncode != 0:
                raise BenchError(f"local-cluster add-learner failed (exit {add.returncode}): "
                                 f"{add.stderr.read().strip()}")
            time.sleep(POLL_S * 5)
        try:
            add.communicate(timeout=CTL_TIMEOUT_S * 4)
        except subprocess.TimeoutExpired:
            pass
        if t_caught is None:
            raise BenchError(f"learner applied {applied} of {target} in {CATCHUP_BOUND_S} s")
        secs = t_caught - t_add
        pid = region.pid(new_id)
        data_bytes = du_bytes(os.path.join(region.dir, f"node{new_id}", "data"))
        return {"entries": target, "fill_s": fill_s, "catchup_s": secs,
                "catchup_from_serving_s": t_caught - t_serve,
                "entries_per_s": target / secs,
                "body_mb_per_s": target * args.body_bytes / secs / 1e6,
                "data_dir_bytes": data_bytes, "data_mb_per_s": data_bytes / secs / 1e6,
                "vmrss_kib": proc_status_kib(pid, "VmRSS") if pid else None,
                "rss_anon_kib": proc_status_kib(pid, "RssAnon") if pid else None,
                "rss_file_kib": proc_status_kib(pid, "RssFile") if pid else None,
                "vmhwm_kib": (proc_status_kib(pid, "VmHWM") if pid else None) or hwm or None}
    finally:
        region.down()


# ------------------------------------------------------------------------------- report

def rng(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)} – {fmt(hi)}"


def f_ops(v):
    return f"{v:,.0f}"


def f_ms(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def f_ratio(v):
    return f"{v:.2f}"


def report(args, results, extras, problems):
    out = []
    out.append(f"nproc={os.cpu_count()}, body {args.body_bytes} B, repeats {args.repeat}, "
               f"ops {args.ops_single} (1 client) / {args.ops} (more clients)")
    out.append("")
    out.append("| clients | carelog ops/s | p50 ms | p99 ms | etcd ops/s | p50 ms | p99 ms "
               "| ratio carelog/etcd |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in args.counts:
        cl = [r for r in results if r["system"] == "carelog" and r["clients"] == c]
        et = [r for r in results if r["system"] == "etcd" and r["clients"] == c]
        ratios = []
        for rep in range(args.repeat):
            a = [r for r in cl if r["repeat"] == rep]
            b = [r for r in et if r["repeat"] == rep]
            if a and b and b[0]["ops_per_s"] > 0:
                ratios.append(a[0]["ops_per_s"] / b[0]["ops_per_s"])
        out.append(f"| {c} | {rng([r['ops_per_s'] for r in cl], f_ops)} "
                   f"| {rng([r['p50_ms'] for r in cl], f_ms)} "
                   f"| {rng([r['p99_ms'] for r in cl], f_ms)} "
                   f"| {rng([r['ops_per_s'] for r in et], f_ops)} "
                   f"| {rng([r['p50_ms'] for r in et], f_ms)} "
                   f"| {rng([r['p99_ms'] for r in et], f_ms)} "
                   f"| {rng(ratios, f_ratio)} |")
    out.append("")
    for c in args.counts:
        cl = [r for r in results if r["system"] == "carelog" and r["clients"] == c]
        for node in sorted({n["node"] for r in cl for n in r["nodes"]}):
            rows = [(r, n) for r in cl for n in r["nodes"] if n["node"] == node]
            per_entry = [n["verified_signatures"] / r["ops"] for r, n in rows
                         if n["verified_signatures"] is not None and r["ops"]]
            out.append(f"carelog {c} clients, node {node} (leader in "
                       f"{sum(1 for _, n in rows if n['leader'])}/{len(rows)} runs): verified "
                       f"signatures "
                       f"{rng([n['verified_signatures'] for _, n in rows], f_ops)} "
                       f"({rng(per_entry, f_ratio)} per committed append), syncs/s "
                       f"{rng([n['syncs_per_s'] for _, n in rows], f_ops)}")
        et = [r for r in results if r["system"] == "etcd" and r["clients"] == c]
        for i in range(MEMBERS if et else 0):
            rows = [r["nodes"][i] for r in et]
            out.append(f"etcd {c} clients, member m{i + 1} (leader in "
                       f"{sum(1 for n in rows if n['leader'])}/{len(rows)} runs): WAL fsyncs/s "
                       f"{rng([n['wal_fsyncs_per_s'] for n in rows], f_ops)}, backend commits/s "
                       f"{rng([n['backend_commits_per_s'] for n in rows], f_ops)}")
    if "failover" in extras:
        t = extras["failover"]
        out.append("")
        out.append(f"failover (kill -9 leader, {len(t)} trials): a survivor reports itself "
                   f"leader after {rng([x['new_leader_s'] * 1000 for x in t], f_ops)} ms, "
                   f"first append sent after the kill acknowledged after "
                   f"{rng([x['first_commit_s'] * 1000 for x in t], f_ops)} ms")
    if "learner" in extras:
        x = extras["learner"]
        out.append("")
        out.append(f"learner catch-up (from `add-learner` to applied = the leader's commit "
                   f"index at the add, node start included): "
                   f"{x['entries']:,} entries in {x['catchup_s']:.1f} s = "
                   f"{x['entries_per_s']:,.0f} entries/s, {x['body_mb_per_s']:.1f} MB/s of bodies,"
                   f" {x['data_mb_per_s']:.1f} MB/s of data dir ({x['data_dir_bytes'] / 1e6:.0f}"
                   f" MB); learner VmRSS {x['vmrss_kib']} KiB (RssAnon {x['rss_anon_kib']}, "
                   f"RssFile {x['rss_file_kib']}: mapped LMDB pages), VmHWM {x['vmhwm_kib']} KiB")
    if problems:
        out.append("")
        out.append("not measured:")
        out.extend(f"- {p}" for p in problems)
    print("\n".join(out), flush=True)


# --------------------------------------------------------------------------------- main

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--counts", default="1,16,64", help="client counts, comma-separated")
    p.add_argument("--ops-single", type=int, default=2000, help="appends/puts with one client")
    p.add_argument("--ops", type=int, default=50000, help="appends/puts with more clients")
    p.add_argument("--body-bytes", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=1, help="run everything R times; print ranges")
    p.add_argument("--carelog-build", default=None,
                   help="meson build dir with carelogd/carelogctl (default build-bench, else "
                        "build)")
    p.add_argument("--only", choices=["both", "etcd", "carelog"], default="both")
    p.add_argument("--no-extras", action="store_true", help="skip failover and learner")
    p.add_argument("--failover-trials", type=int, default=5)
    p.add_argument("--learner-entries", type=int, default=100000)
    p.add_argument("--etcd-base-port", type=int, default=23700,
                   help="etcd clients on P+1..P+3, peers on P+101..P+103")
    p.add_argument("--carelog-base-port", type=int, default=17400,
                   help="carelog peers on P..P+3")
    p.add_argument("--json-out", help="also write every raw result to this file")
    p.add_argument("--keep", action="store_true", help="keep data dirs and logs")
    args = p.parse_args()
    args.counts = [int(c) for c in args.counts.split(",") if c.strip()]
    if not args.counts or min(args.counts) < 1 or args.repeat < 1:
        p.error("--counts needs client counts >= 1, --repeat >= 1")
    if args.carelog_build is None:
        args.carelog_build = next((os.path.join(TOP, d) for d in ("build-bench", "build")
                                   if os.access(os.path.join(TOP, d, "node", "ctl", "carelogctl"),
                                                os.X_OK)), os.path.join(TOP, "build-bench"))
    args.carelog_build = os.path.abspath(args.carelog_build)
    return args


def main():
    args = parse_args()
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    tmp = tempfile.mkdtemp(prefix="clbench-")
    results, extras, problems = [], {}, []
    want_etcd = args.only in ("both", "etcd")
    want_carelog = args.only in ("both", "carelog")
    try:
        log(f"nproc={os.cpu_count()} work dir {tmp}")
        loadgen = build_loadgen(tmp) if want_etcd else None
        carelog_broken = None
        for rep in range(args.repeat):
            for c in args.counts:
                count = args.ops_single if c == 1 else args.ops
                systems = (["etcd"] if want_etcd else []) + (["carelog"] if want_carelog else [])
                for system in systems:
                    if system == "carelog" and carelog_broken:
                        continue
                    tag = f"{system[0]}{rep}c{c}"
                    load = loadavg()
                    try:
                        if system == "etcd":
                            r = run_etcd_point(args, tmp, loadgen, c, count, tag)
                        else:
                            r = run_carelog_point(args, tmp, c, count, tag)
                    except BenchError as e:
                        if system == "etcd":
                            raise
                        carelog_broken = str(e)
                        problems.append(f"carelog table and counters: {e}")
                        log(f"carelog: {e}")
                        continue
                    r.update(system=system, repeat=rep, clients=c, loadavg_before=load)
                    results.append(r)
                    log(f"[{rep + 1}/{args.repeat}] {system:7} {c:3} clients: "
                        f"{r['ops_per_s']:9,.0f} ops/s  p50 {r['p50_ms']:7.2f} ms  "
                        f"p99 {r['p99_ms']:7.2f} ms  (loadavg before {load})")
        if want_carelog and not args.no_extras:
            if carelog_broken:
                problems.append("failover and learner catch-up: the carelog region did not run")
            else:
                for name, fn in (("failover", failover_trials), ("learner", learner_catchup)):
                    try:
                        extras[name] = fn(args, tmp)
                    except BenchError as e:
                        problems.append(f"{name}: {e}")
                        log(f"{name}: {e}")
        report(args, results, extras, problems)
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump({"results": results, "extras": extras, "problems": problems}, f,
                          indent=1)
        return 1 if problems else 0
    except BenchError as e:
        log(f"cluster_bench: {e}")
        if results:
            report(args, results, extras, problems + [str(e)])
        return 1
    except KeyboardInterrupt as e:
        log(f"cluster_bench: interrupted ({e}); stopping everything")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleanup runs to the end
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        PROCS.cleanup()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
