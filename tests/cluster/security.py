#!/usr/bin/env python3
"""Nodes without the right key or cluster id cannot join, read or write.

Three voters under load, then, one after another, nodes made by hand:
  A. an impostor claiming voter 2's id with a key of its own (node 2's pinned key differs):
     refused at start, or running but never receiving an entry;
  B. a node with a new id the configuration does not know, fresh key, same genesis;
  C. a hijacked learner slot: the leader adds learner 10 with public key K1, but the node that
     answers at that address runs with key K2: its handshakes fail, it never receives entries;
  D. a node whose INI cluster id differs from the genesis: refused at start with a message
     naming the cluster id;
  E. a node of another cluster (its own genesis, another cluster id) that names real node 1 as
     its peer and dials it: node 1 drops its frames.
For each that runs: its status never shows entries beyond its own genesis, a local read of the
region's patients is empty, a linearizable read fails, an append is never acknowledged and its
request id never appears in the region; the region never lists it as leader or member (but C,
added on purpose, until it is removed). Where `status` has `transport` counters, the region's
dropped-frame count must grow while an impostor dials it. The region keeps committing
throughout; then the checks every test ends with.
"""

import os
import secrets
import subprocess
import time

import harness
from harness import check, log

ACK_WAIT_S = 60
IMPOSTOR_RUN_S = 4        # how long a running impostor is watched
START_REFUSE_S = 30       # a refused start exits within this
ACKS_DURING = 5


def genesis_cluster_id(path):
    with open(path) as f:
        for line in f:
            key, _, value = line.partition("=")
            if key.strip() == "id":
                return value.strip()
    raise harness.TestFailure(f"no cluster id in {path}")


class Case:
    def __init__(self, cluster, load, history, name, rogue, seed):
        self.cluster, self.load, self.history = cluster, load, history
        self.name, self.rogue, self.seed = name, rogue, seed

    def watch(self, refused_ok, drops=True, drop_log=None):
        """Starts the rogue node and checks it learns and changes nothing. Returns whether it
        ran (False: it refused to start, which refused_ok allows). drops: frames reach the
        region (it dials the region, or the region dials it), so the drop count must grow, or,
        with drop_log, a region node must log that text (drops the counters do not cover)."""
        c, rogue = self.cluster, self.rogue
        dropped_before = c.transport_dropped()
        acked_before = self.history.count("append", "ok")
        rogue.start()
        t = time.monotonic()

        def serving_or_exited():
            return rogue.exited() is not None or rogue.status() is not None
        harness.poll(f"{self.name}: started or refused", serving_or_exited, START_REFUSE_S)
        if rogue.exited() is not None:
            check(refused_ok, f"{self.name}: exited {rogue.exited()} but should have run:\n"
                  + rogue.log_text()[-1500:])
            check(rogue.exited() != 0, f"{self.name}: exited 0 at start")
            log(f"{self.name}: refused at start (exit {rogue.exited()}): "
                f"{last_line(rogue.log_text())}")
            return False
        # Running: it must stay empty while the region moves on.
        self.load.wait_acks(acked_before + ACKS_DURING, ACK_WAIT_S,
                            what=f"region committing with {self.name} running")
        while time.monotonic() < t + IMPOSTOR_RUN_S * harness.scale():
            self.assert_empty()
            time.sleep(harness.POLL_S * 10)
        self.assert_empty()
        for patient in self.load.patients[:2]:
            rc, entries, info = c.read(None, patient, "local", endpoint=rogue.endpoint)
            check(rc != 0 or not entries, f"{self.name}: served {len(entries or [])} entries")
            rc, entries, info = c.read(None, patient, "linearizable", endpoint=rogue.endpoint,
                                       timeout_s=2)
            check(rc != 0 or not entries,
                  f"{self.name}: linearizable read answered {len(entries or [])} entries")
        rid = f"sec-{self.seed:x}-{self.name}"
        rc, reply, err = c.append(None, self.load.patients[0], f"ctest security {self.name}",
                                  rid, timeout_s=2, endpoint=rogue.endpoint)
        check(rc != 0, f"{self.name}: append acknowledged: {reply}")
        self.load.extra_secrets.add(f"ctest security {self.name}")
        self.forbidden_rids.append(rid)
        dropped_after = c.transport_dropped()
        if dropped_before is None or dropped_after is None:
            log(f"{self.name}: status has no transport counters: drop count not checked")
        elif not drops:
            log(f"{self.name}: region dropped frames {dropped_before} -> {dropped_after} "
                "(a node outside the configuration need not dial anyone)")
        else:
            def grew():
                now = c.transport_dropped()
                if now is not None and now > dropped_before:
                    return f"dropped-frame counters {dropped_before} -> {now}"
                if drop_log and drop_log in c.all_logs():
                    return f"counters unchanged, a region node logged {drop_log!r}"
                return None
            how = harness.poll(f"{self.name}: the region dropping its frames", grew, 30)
            log(f"{self.name}: region refuses its frames: {how}")
        log(f"{self.name}: ran {time.monotonic() - t:.1f} s and stayed empty; append exit {rc}")
        return True

    forbidden_rids = []

    def assert_empty(self):
        s = self.rogue.status()
        if s is not None:
            check(s.get("applied_index", 0) <= 1 and s.get("commit_index", 0) <= 1,
                  f"{self.name}: applied {s.get('applied_index')} commit "
                  f"{s.get('commit_index')}: it received entries")
        if self.rogue.node_id in self.cluster.ids():
            return  # it claims a real node's id: whom the region follows says nothing
        for node_id in sorted(self.cluster.serving):
            rs = self.cluster.status(node_id)
            if rs is None:
                continue
            check(rs.get("leader_id") != self.rogue.node_id,
                  f"{self.name}: node {node_id} follows it")


def last_line(text):
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][-300:] if lines else ""


def main():
    args = harness.parse_args()
    work = harness.Workdir("sec", args.keep)
    cluster = harness.Cluster(args, work.path, voters=3)
    history = harness.History()
    rogues = []
    ok = False
    try:
        cluster.up()
        load = harness.Workload(cluster, history, args.seed, "sec", writers=3, readers=1).start()
        load.wait_acks(10, ACK_WAIT_S)
        genesis = os.path.join(cluster.dir, "genesis.ini")
        cid = genesis_cluster_id(genesis)
        base = cluster.base_port

        def keys(name):
            d = os.path.join(work.path, f"keys-{name}")
            harness.keygen(args.carelogctl, d)
            return d

        def rogue(name, node_id, key_dir, cluster_id=cid, gen=genesis, port=None):
            r = harness.Rogue(cluster, name, node_id, key_dir, cluster_id, gen,
                              port or base + node_id - 1)
            rogues.append(r)
            return r

        # A: voter 2's id, another key. Listens on a port of its own (node 2 holds 2's).
        a = rogue("imp-a", 2, keys("a"), port=base + 8)
        Case(cluster, load, history, "impostor-as-2", a, args.seed).watch(refused_ok=True)
        a.kill()

        # B: an id nobody knows.
        b = rogue("imp-b", 9, keys("b"))
        Case(cluster, load, history, "unknown-id-9", b, args.seed).watch(refused_ok=True,
                                                                         drops=False)
        b.kill()

        # C: learner 10 added with K1, run with K2.
        k1, k2 = keys("c1"), keys("c2")
        lead = cluster.wait_leader()
        address = f"tcp://127.0.0.1:{base + 9}"
        r = cluster.ctl(lead, ["member", "add-learner", "--id", "10", "--org", "ctest-org-10",
                               "--address", address, "--public-key",
                               os.path.join(k1, "node.pub"), "--json"])
        check(r.returncode == 0, f"member add-learner 10: exit {r.returncode}: {r.stderr}")
        log(f"learner 10 added with key K1 ({address}); the node runs with key K2")
        c = rogue("imp-c", 10, k2)
        Case(cluster, load, history, "hijacked-learner-10", c, args.seed).watch(refused_ok=True)

        def lag_of_10():
            s = cluster.status(cluster.wait_leader())
            m = [m for m in s["members"] if m["id"] == 10]
            return m and m[0].get("match_index", 0) == 0 and s
        harness.poll("the leader showing learner 10 at match index 0", lag_of_10, 10)
        c.kill()
        lead = cluster.wait_leader()
        r = cluster.ctl(lead, ["member", "remove", "--id", "10", "--json"])
        check(r.returncode == 0, f"member remove 10: exit {r.returncode}: {r.stderr}")
        harness.poll("learner 10 gone from the leader's members",
                     lambda: all(m["id"] != 10 for m in
                                 cluster.status(cluster.wait_leader())["members"]), 30)

        # D: the INI names another cluster id than the genesis.
        d = rogue("imp-d", 11, keys("d"), cluster_id=secrets.token_hex(16))
        ran = Case(cluster, load, history, "wrong-cluster-id-11", d, args.seed).watch(
            refused_ok=True)
        check(not ran, "a node whose cluster id differs from its genesis started")
        check("cluster" in d.log_text().lower(),
              "the refusal does not name the cluster id:\n" + d.log_text()[-800:])

        # E: another cluster that names real node 1 (its address and public key) as a peer.
        e_keys = keys("e")
        other = os.path.join(work.path, "other-genesis.ini")
        res = subprocess.run(
            [args.carelogctl, "cluster", "init", "--out", other, "--json",
             "--member", f"12,ctest-org-12,tcp://127.0.0.1:{base + 11},{e_keys}/node.pub",
             "--member", f"1,local-org-1,{cluster.nodes[1]['address']},"
                         f"{cluster.node_dir(1)}/node.pub"],
            capture_output=True, text=True, timeout=60)
        check(res.returncode == 0, f"cluster init of the other cluster: {res.stderr}")
        e = rogue("imp-e", 12, e_keys, cluster_id=genesis_cluster_id(other), gen=other)
        Case(cluster, load, history, "other-cluster-12", e, args.seed).watch(
            refused_ok=False, drop_log="event=replication.frame_dropped reason=cluster")
        e.kill()

        # No request id an impostor tried may ever appear in the region.
        for node_id in cluster.ids():
            for patient in load.patients[:1]:
                rc, entries, info = cluster.read(node_id, patient, "local")
                check(rc == 0, f"read on node {node_id}: {info}")
                bad = [x["request_id"] for x in entries if x["request_id"] in
                       Case.forbidden_rids]
                check(not bad, f"node {node_id} holds impostor appends {bad}")
            members = {m["id"] for m in cluster.status(node_id)["members"]}
            check(members == set(cluster.ids()), f"node {node_id} lists members {members}")
        cluster.final_checks(load, history, work.path)
        ok = True
    finally:
        for r in rogues:
            r.kill()
        if not ok:
            cluster.destroy()
        work.done(ok)


if __name__ == "__main__":
    harness.run(main)
