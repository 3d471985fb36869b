"""The scenario suite's region: four organisations' nodes sharing one movable clock, and helpers.

A Region is three voters and one learner, each node a different organisation:

    node 1  st-olavs           hospital            voter    unit "medisin"
    node 2  trondheim-kommune  municipality        voter    unit "hjemmetjenesten"
    node 3  legekontor-lade    GP office           voter    unit "lade"
    node 4  helsenorge         citizen portal      learner  unit ""

all in one genesis (`carelogctl cluster init --member ... --learner ...`), each started as
carelogd_testclock with the same --clock-file: the region's time is the wall clock plus the
offset in that file, and Region.advance() moves it for every node at once (leader time stamps
and the time every access decision is judged at). Time only moves forward within a test.

Every carelogctl call names its actor (--actor ID:ROLE, --unit, --purpose) and asks for --json;
the helpers assert exit codes and return the parsed reply. Waits are polls with deadlines
(tests/cluster/harness.py: poll, scaled by CARELOG_CLUSTER_TIME_SCALE); nothing sleeps to
synchronise. On failure every node is killed and the work dir (configs, data, logs) is kept.
"""

import datetime
import json
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "cluster"))
import harness  # noqa: E402  (check, log, poll, Workdir, free_base_port, run)
from harness import TestFailure, check, log, poll  # noqa: E402,F401

HOSPITAL, MUNICIPALITY, GP, PORTAL = 1, 2, 3, 4
NODES = {
    HOSPITAL: {"org": "st-olavs", "kind": "voter", "unit": "medisin"},
    MUNICIPALITY: {"org": "trondheim-kommune", "kind": "voter", "unit": "hjemmetjenesten"},
    GP: {"org": "legekontor-lade", "kind": "voter", "unit": "lade"},
    PORTAL: {"org": "helsenorge", "kind": "learner", "unit": ""},
}

CTL_TIMEOUT_S = 10        # carelogctl --timeout of one call
CTL_WAIT_S = 30           # bound on one carelogctl run beyond its own --timeout
START_WAIT_S = 60         # a started node serves `status` within this
LEADER_WAIT_S = 30
STOP_WAIT_S = 60
SHIP_WAIT_S = 20          # an audit row reaches another node's access log within this
APPLY_WAIT_S = 20         # a committed entry is applied on every node within this
EXIT_FAILED, EXIT_USAGE, EXIT_PENDING = 1, 2, 3
DENIED_TEXT = "not allowed"  # carelog_strerror(CARELOG_EDENIED)

MS_PER_HOUR = 3600 * 1000
MS_PER_DAY = 24 * MS_PER_HOUR


def parse_args():
    def extra(p):
        p.add_argument("--story", required=True)
    return harness.parse_args(extra)


def years_ago(years, days_more=0):
    """The calendar date `years` years (and `days_more` days) before today (UTC), as
    YYYY-MM-DD; 29 February becomes the 28th."""
    today = datetime.datetime.now(datetime.timezone.utc).date()
    day = today.day if not (today.month == 2 and today.day == 29) else 28
    d = datetime.date(today.year - years, today.month, day)
    return (d - datetime.timedelta(days=days_more)).isoformat()


def reason_texts(reply):
    """The withheld reasons of a read reply as {reason text: count}."""
    return {r.get("reason", ""): r.get("count", 0) for r in reply.get("withheld_reasons") or []}


def row_allowed(row):
    """An access-log row's decision as a bool (rows say "decision": "allowed"|"denied")."""
    if "decision" in row:
        return row["decision"] == "allowed"
    return bool(row.get("allowed"))


class Result:
    def __init__(self, rc, out, err, argv):
        self.rc = rc
        self.out = out      # parsed JSON of stdout (None when not JSON)
        self.text = ""      # raw stdout
        self.err = err
        self.argv = argv

    def __repr__(self):
        return f"exit {self.rc}: {self.err[-400:] or self.text[-400:]}"


class Region:
    def __init__(self, args, name):
        self.args = args
        self.carelogd = args.carelogd
        self.carelogctl = args.carelogctl
        self.work = harness.Workdir(name, args.keep)
        self.dir = self.work.path
        self.clock_file = os.path.join(self.dir, "clock")
        self.offset_ms = 0
        self.procs = {}
        self.logs = {}
        self.secrets = set()   # patient ids and bodies no node log may hold
        self.base_port = harness.free_base_port(len(NODES))
        self.passed = False
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("CARELOG_ACTOR", "CARELOG_UNIT", "CARELOG_ENDPOINT")}

    # ---- paths

    def node_dir(self, i):
        return os.path.join(self.dir, f"n{i}")

    def data_dir(self, i):
        return os.path.join(self.node_dir(i), "data")

    def endpoint(self, i):
        return f"ipc://{self.node_dir(i)}/client.sock"

    def org(self, i):
        return NODES[i]["org"]

    def address(self, i):
        return f"tcp://127.0.0.1:{self.base_port + i - 1}"

    # ---- making and running

    def make(self):
        # No clock file yet: the nodes run at offset 0 (a missing file) until a story moves time.
        members = []
        for i, n in NODES.items():
            harness.keygen(self.carelogctl, self.node_dir(i))
            flag = "--member" if n["kind"] == "voter" else "--learner"
            members += [flag, ",".join([str(i), n["org"], self.address(i),
                                        os.path.join(self.node_dir(i), "node.pub")])]
        genesis = os.path.join(self.dir, "genesis.ini")
        r = subprocess.run([self.carelogctl, "cluster", "init", "--out", genesis, "--json"] +
                           members, capture_output=True, text=True, timeout=CTL_WAIT_S,
                           env=self.env)
        check(r.returncode == 0, f"cluster init: exit {r.returncode}: {r.stderr}")
        cluster_id = json.loads(r.stdout)["cluster_id"]
        for i, n in NODES.items():
            with open(os.path.join(self.node_dir(i), "carelogd.ini"), "w") as f:
                f.write(f"""; scenario node {i}: {n['org']} ({n['kind']})
[node]
id = {i}
cluster_id = {cluster_id}
data_dir = {self.data_dir(i)}
key_file = {self.node_dir(i)}/node.key
genesis_file = {genesis}
actor_default = scen-operator-{i}
unit = {n['unit']}

[client]
endpoint = {self.endpoint(i)}

[storage]
map_size_bytes = 1GiB

[replication]
listen = {self.address(i)}
""")
        log(f"region {self.dir}: base port {self.base_port}, clock file {self.clock_file}")

    def start(self, i):
        check(i not in self.procs or self.procs[i].poll() is not None, f"node {i} runs")
        path = os.path.join(self.node_dir(i), "carelogd.log")
        self.logs[i] = path
        with open(path, "ab") as logf:
            self.procs[i] = subprocess.Popen(
                [self.carelogd, "--config", os.path.join(self.node_dir(i), "carelogd.ini"),
                 "--clock-file", self.clock_file],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=self.env)

    def up(self):
        """Makes the region if needed, starts every node, waits for a leader and for the
        learner to apply the leader's commit index."""
        if not os.path.exists(os.path.join(self.dir, "genesis.ini")):
            self.make()
        for i in NODES:
            self.start(i)
        for i in NODES:
            self.wait_serving(i)
        lead = self.wait_leader()
        target = self.status(lead)["commit_index"]
        self.wait_applied(target)
        log(f"region up: leader node {lead} ({self.org(lead)}), every node at index {target}")
        return lead

    def exited(self, i):
        p = self.procs.get(i)
        return p is None or p.poll() is not None

    def fail_if_exited(self, i):
        p = self.procs.get(i)
        if p is not None and p.poll() is not None:
            raise TestFailure(f"node {i} exited with status {p.returncode}; last lines of "
                              f"{self.logs[i]}:\n{self.last_log(i)}")

    def wait_serving(self, i):
        def serving():
            self.fail_if_exited(i)
            return self.status(i) is not None
        poll(f"node {i} serving", serving, START_WAIT_S)

    def leader(self):
        voters = [i for i, n in NODES.items() if n["kind"] == "voter" and not self.exited(i)]
        seen = {i: self.status(i) for i in voters}
        if any(s is None for s in seen.values()):
            return None
        leaders = [i for i, s in seen.items() if s.get("role") == "leader"]
        if len(leaders) != 1 or any(s.get("leader_id") != leaders[0] for s in seen.values()):
            return None
        return leaders[0]

    def wait_leader(self):
        return poll("the voters agreeing on a leader", self.leader, LEADER_WAIT_S)

    def wait_applied(self, index, nodes=None, seconds=APPLY_WAIT_S):
        """Every (running) node in `nodes` has applied `index`."""
        ids = [i for i in (nodes or NODES) if not self.exited(i)]

        def applied():
            for i in ids:
                self.fail_if_exited(i)
                s = self.status(i)
                if s is None or s.get("applied_index", 0) < index:
                    return False
            return True
        poll(f"nodes {ids} applying index {index}", applied, seconds)

    def stop(self, i):
        """SIGTERM; the node must exit 0."""
        p = self.procs[i]
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=STOP_WAIT_S * harness.scale())
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise TestFailure(f"node {i} did not stop within {STOP_WAIT_S} s of SIGTERM")
        check(p.returncode == 0, f"node {i} exited {p.returncode} after SIGTERM; last lines of "
              f"{self.logs[i]}:\n{self.last_log(i)}")

    def kill(self, i):
        p = self.procs.get(i)
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()

    def down(self):
        for i in NODES:
            p = self.procs.get(i)
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for i in NODES:
            if i in self.procs:
                self.stop(i)

    def last_log(self, i, lines=20):
        try:
            with open(self.logs[i], "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except (OSError, KeyError):
            return ""

    def check_logs_clean(self):
        """No node log holds a patient id or a body this test used (logs carry ids, hashes and
        indexes only)."""
        text = ""
        for path in self.logs.values():
            with open(path, "rb") as f:
                text += f.read().decode(errors="replace")
        leaked = sorted(s for s in self.secrets if s in text)
        check(not leaked, f"node logs hold patient data: {leaked[:5]}")

    def finish(self):
        """The end of every story: a clean stop of every node and clean logs."""
        self.down()
        self.check_logs_clean()
        self.passed = True

    def close(self):
        if not self.passed:
            for i in NODES:
                self.kill(i)
            for i in NODES:
                if i in self.logs:
                    log(f"node {i} log tail:\n{self.last_log(i, 8)}")
        self.work.done(self.passed)

    # ---- the clock

    def set_clock(self, offset_ms):
        """Every node's clock becomes wall time + offset_ms (written and renamed: a node sees
        either the old or the new file, never half of one). Only forward within a test."""
        check(offset_ms >= self.offset_ms, "the region's clock only moves forward")
        tmp = self.clock_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{offset_ms}\n")
        os.replace(tmp, self.clock_file)
        if offset_ms != self.offset_ms:
            log(f"clock: offset {offset_ms} ms ({offset_ms / MS_PER_DAY:.2f} days ahead)")
        self.offset_ms = offset_ms

    def advance(self, ms):
        self.set_clock(self.offset_ms + ms)

    def now_ms(self):
        return int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000) + \
            self.offset_ms

    # ---- carelogctl

    def ctl(self, i, argv, actor=None, unit=None, purpose=None, timeout_s=CTL_TIMEOUT_S,
            json_out=True):
        cmd = [self.carelogctl, "--endpoint", self.endpoint(i), "--timeout", str(timeout_s)]
        if actor:
            cmd += ["--actor", actor]
        if unit is not None:
            cmd += ["--unit", unit]
        if purpose:
            cmd += ["--purpose", purpose]
        cmd += list(argv)
        if json_out:
            cmd.append("--json")
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                               timeout=(timeout_s + CTL_WAIT_S) * harness.scale(), env=self.env)
        except subprocess.TimeoutExpired:
            return Result(124, None, "carelogctl did not return in time", cmd)
        out = None
        if r.stdout.strip():
            try:
                out = json.loads(r.stdout)
            except ValueError:
                out = None
        res = Result(r.returncode, out, r.stderr.strip(), cmd)
        res.text = r.stdout
        check(r.returncode != EXIT_USAGE,
              f"carelogctl usage error (the sheet's CLI?): {' '.join(cmd[5:])}: {r.stderr}")
        return res

    def ok(self, i, argv, **kw):
        """A call that must succeed; its JSON reply."""
        r = self.ctl(i, argv, **kw)
        check(r.rc == 0, f"node {i} ({self.org(i)}): {kw.get('actor')}: "
              f"{' '.join(argv)}: {r}")
        check(r.out is not None, f"{' '.join(argv)}: no JSON on stdout: {r.text[:300]!r}")
        return r.out

    def write(self, i, argv, **kw):
        """A write command (append, policy commands): committed; returns the reply
        {state, index, id, request_id}."""
        reply = self.ok(i, argv, **kw)
        check(reply.get("state") == "committed" and reply.get("id"),
              f"{' '.join(argv)}: not committed: {reply}")
        return reply

    def denied(self, i, argv, want=None, **kw):
        """A call the node must refuse with EDENIED (exit 1, "not allowed"); `want` is a word
        the reason must hold. Returns the message."""
        r = self.ctl(i, argv, **kw)
        check(r.rc == EXIT_FAILED and DENIED_TEXT in r.err,
              f"node {i} ({self.org(i)}): {kw.get('actor')}: {' '.join(argv)}: expected a "
              f"denial, got {r} {r.text[:300]}")
        if want is not None:
            check(want.lower() in r.err.lower(),
                  f"{' '.join(argv)}: the denial does not say {want!r}: {r.err}")
        return r.err

    def status(self, i):
        if self.exited(i):
            return None
        r = self.ctl(i, ["status"], timeout_s=2)
        return r.out if r.rc == 0 else None

    def verify(self, i):
        r = self.ctl(i, ["verify"], timeout_s=120)
        check(r.rc == 0 and r.out and r.out.get("ok") is True,
              f"verify on node {i}: {r} {r.text[:2000]}")
        return r.out

    # ---- reading

    def read(self, i, actor, patient, history=False, min_index=None, unit=None, purpose=None):
        """A whole read reply (one page; stories hold few entries) that must be allowed."""
        argv = ["read", "--patient", patient, "--limit", "1000"]
        if history:
            argv.append("--history")
        if min_index:
            argv += ["--min-index", str(min_index)]
        reply = self.ok(i, argv, actor=actor, unit=unit, purpose=purpose)
        check(not reply.get("more"), "a story's timeline fits one page")
        return reply

    def read_denied(self, i, actor, patient, want=None, min_index=None, unit=None):
        argv = ["read", "--patient", patient]
        if min_index:
            argv += ["--min-index", str(min_index)]
        return self.denied(i, argv, want=want, actor=actor, unit=unit)

    def get(self, i, actor, entry_id, unit=None):
        return self.ok(i, ["get", "--id", entry_id], actor=actor, unit=unit)

    # ---- the access log

    def access_log(self, i, actor, patient=None, of_actor=None, of_org=None, limit=1000):
        argv = ["access-log", "--limit", str(limit)]
        if patient is not None:
            argv += ["--patient", patient]
        else:
            argv += ["--actor", of_actor]
            if of_org:
                argv += ["--org", of_org]
        reply = self.ok(i, argv, actor=actor)
        rows = reply.get("rows")
        check(isinstance(rows, list), f"access-log: no rows array: {reply}")
        return rows

    def wait_row(self, i, actor, what, match, patient=None, of_actor=None, of_org=None,
                 seconds=SHIP_WAIT_S):
        """Polls node i's access log until a row satisfies `match`; returns it."""
        last = []

        def found():
            rows = self.access_log(i, actor, patient=patient, of_actor=of_actor, of_org=of_org)
            last[:] = rows
            for row in rows:
                if match(row):
                    return row
            return None
        try:
            return poll(f"{what} in the access log at node {i} ({self.org(i)})", found, seconds)
        except TestFailure as e:
            raise TestFailure(f"{e}; rows seen: {json.dumps(last[:12])}")


def row_is(row, **want):
    """Whether an access-log row has the wanted fields; allowed=True/False is the decision."""
    for k, v in want.items():
        if k == "allowed":
            if row_allowed(row) != v:
                return False
        elif row.get(k) != v:
            return False
    return True

