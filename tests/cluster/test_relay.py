#!/usr/bin/env python3
"""Unit test of tests/tools/relay.py against plain TCP echo servers (no carelogd needed).

Checks that a route forwards both ways, that a cut aborts live connections and turns new ones
away (accept-and-close) while other routes keep working, that a client which redials like
nng's dialer gets through again once healed, isolate / heal-all, dynamic routes, an upstream
that is down, bad commands, and a clean stop. Every wait is a poll with a deadline.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RELAY = os.path.join(os.path.dirname(HERE), "tools", "relay.py")
sys.path.insert(0, os.path.dirname(RELAY))
import relay  # noqa: E402

DEADLINE_S = 10.0     # bound on every wait
IO_TIMEOUT_S = 2.0    # one socket operation


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EchoServer:
    """Echoes every byte back on each accepted connection, prefixed by its tag."""

    def __init__(self, tag):
        self.tag = tag.encode()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn):
        with conn:
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    conn.sendall(self.tag + data)
            except OSError:
                return

    def close(self):
        try:  # wakes the accept() blocked in the thread; close alone would not stop it
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=DEADLINE_S)


def roundtrip(port, payload=b"ping"):
    """Connects, sends, returns the reply; b"" when the relay closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S) as s:
        return exchange(s, payload)


def exchange(s, payload):
    try:
        s.sendall(payload)
        buf = b""
        while True:
            data = s.recv(65536)
            if not data:
                return buf
            buf += data
            if buf.endswith(payload):
                return buf
    except (ConnectionResetError, BrokenPipeError):
        return b""


def poll(what, fn, deadline_s=DEADLINE_S):
    end = time.monotonic() + deadline_s
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class RelayTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cl-relay-")
        self.echo = {2: EchoServer("to2:"), 1: EchoServer("to1:")}
        self.port = {(1, 2): free_port(), (2, 1): free_port()}
        routes = {"routes": [
            {"from": a, "to": b, "listen": self.port[(a, b)],
             "target": f"127.0.0.1:{self.echo[b].port}"} for (a, b) in self.port]}
        with open(os.path.join(self.dir, "routes.json"), "w") as f:
            json.dump(routes, f)
        self.control = os.path.join(self.dir, "relay.sock")
        self.ready = os.path.join(self.dir, "ready")
        self.log = open(os.path.join(self.dir, "relay.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, RELAY, "--control", self.control, "--routes",
             os.path.join(self.dir, "routes.json"), "--ready", self.ready],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        poll("relay ready", lambda: os.path.exists(self.ready) or self.proc.poll() is not None)
        self.assertIsNone(self.proc.poll(), "relay exited while starting")

    def tearDown(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=DEADLINE_S)
        self.log.close()
        for e in self.echo.values():
            e.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cmd(self, **kw):
        reply = relay.request(self.control, kw)
        return reply

    def route(self, a, b):
        for r in self.cmd(op="status")["routes"]:
            if (r["from"], r["to"]) == (a, b):
                return r
        raise AssertionError(f"no route {a}->{b}")

    def test_forward_both_ways_and_counts(self):
        self.assertEqual(roundtrip(self.port[(1, 2)]), b"to2:ping")
        self.assertEqual(roundtrip(self.port[(2, 1)], b"pong"), b"to1:pong")
        r = self.route(1, 2)
        self.assertEqual(r["accepted"], 1)
        self.assertEqual(r["bytes_forward"], 4)
        self.assertEqual(r["bytes_back"], 8)
        self.assertFalse(r["cut"])

    def test_cut_aborts_live_refuses_new_heal_restores(self):
        live = socket.create_connection(("127.0.0.1", self.port[(1, 2)]), timeout=IO_TIMEOUT_S)
        self.assertEqual(exchange(live, b"a"), b"to2:a")
        poll("live connection counted", lambda: self.route(1, 2)["live"] == 1)
        reply = self.cmd(op="cut", pairs=[[1, 2]])
        self.assertTrue(reply["ok"])
        self.assertEqual(reply["cut"], [[1, 2]])
        # The live connection is gone at once: the next read sees EOF or a reset.
        self.assertEqual(exchange(live, b"b"), b"")
        live.close()
        # New connections are accepted and closed.
        self.assertEqual(roundtrip(self.port[(1, 2)]), b"")
        poll("refusal counted", lambda: self.route(1, 2)["refused"] >= 1)
        # The reverse direction is a separate route and still works.
        self.assertEqual(roundtrip(self.port[(2, 1)]), b"to1:ping")
        self.cmd(op="heal", pairs=[[1, 2]])
        self.assertEqual(roundtrip(self.port[(1, 2)]), b"to2:ping")
        self.assertEqual(self.cmd(op="status")["cut"], [])

    def test_redialing_client_gets_through_after_heal(self):
        """A client that redials on every close, like nng's dialer, recovers after heal."""
        got = []
        stop = threading.Event()

        def dialer():
            while not stop.is_set():
                try:
                    with socket.create_connection(("127.0.0.1", self.port[(1, 2)]),
                                                  timeout=IO_TIMEOUT_S) as s:
                        while not stop.is_set():
                            reply = exchange(s, b"x")
                            if not reply:
                                break
                            got.append(time.monotonic())
                except OSError:
                    pass
                time.sleep(0.02)  # the dialer's reconnect backoff, not synchronisation

        t = threading.Thread(target=dialer, daemon=True)
        t.start()
        try:
            poll("traffic before the cut", lambda: len(got) > 5)
            self.cmd(op="cut", pairs=[[1, 2]])
            cut_at = time.monotonic()
            # Nothing gets through while cut (replies counted after the cut are at most the
            # one in flight when it happened).
            poll("redials refused", lambda: self.route(1, 2)["refused"] >= 3)
            self.assertLessEqual(len([g for g in got if g > cut_at]), 1)
            healed_at = time.monotonic()
            self.cmd(op="heal", pairs=[[1, 2]])
            poll("traffic after heal", lambda: any(g > healed_at for g in got))
        finally:
            stop.set()
            t.join(timeout=DEADLINE_S)

    def test_isolate_and_heal_all(self):
        reply = self.cmd(op="isolate", node=1)
        self.assertEqual(sorted(map(tuple, reply["cut"])), [(1, 2), (2, 1)])
        self.assertEqual(roundtrip(self.port[(1, 2)]), b"")
        self.assertEqual(roundtrip(self.port[(2, 1)]), b"")
        self.cmd(op="heal-all")
        self.assertEqual(roundtrip(self.port[(1, 2)]), b"to2:ping")
        self.assertEqual(roundtrip(self.port[(2, 1)]), b"to1:ping")

    def test_add_route_and_upstream_down(self):
        echo3 = EchoServer("to3:")
        try:
            port = free_port()
            reply = self.cmd(op="add", **{"from": 1, "to": 3, "listen": port,
                                          "target": f"127.0.0.1:{echo3.port}"})
            self.assertTrue(reply["ok"], reply)
            self.assertEqual(roundtrip(port), b"to3:ping")
        finally:
            echo3.close()
        # Node 3 is down now: the relay closes the client's connection and counts it.
        self.assertEqual(roundtrip(port), b"")
        poll("upstream failure counted", lambda: self.route(1, 3)["upstream_failed"] >= 1)

    def test_bad_commands(self):
        self.assertFalse(self.cmd(op="cut", pairs=[[1, 9]])["ok"])
        self.assertFalse(self.cmd(op="nonsense")["ok"])
        self.assertFalse(self.cmd(op="isolate", node=9)["ok"])
        reply = self.cmd(op="add", **{"from": 1, "to": 2, "listen": free_port(),
                                      "target": "127.0.0.1:1"})
        self.assertFalse(reply["ok"])
        self.assertIn("exists", reply["error"])
        self.assertTrue(self.cmd(op="status")["ok"])

    def test_stop(self):
        self.assertTrue(self.cmd(op="stop")["ok"])
        self.assertEqual(self.proc.wait(timeout=DEADLINE_S), 0)
        self.assertFalse(os.path.exists(self.control))


if __name__ == "__main__":
    unittest.main(verbosity=2)
