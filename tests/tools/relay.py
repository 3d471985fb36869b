#!/usr/bin/env python3
"""TCP relay between cluster nodes that can cut and heal each ordered pair (partition tests).

One process serves a whole local cluster. Every ordered pair A->B is a *route*: its own
listening port on which A dials B (carelogd's `[peers]` override points A there), forwarded to
B's real peer address. nng's push0 dialer keeps one TCP connection per dialer and redials
after any close, so each accepted connection gets its own upstream connection; a route that is
cut aborts (RST) its live connections and answers new ones by accepting and closing them at
once, until it is healed. Bytes already handed to the kernel before a cut may still arrive.

    relay.py --control SOCK [--routes FILE] [--ready FILE] [--host H]

--routes FILE   JSON {"routes": [{"from": A, "to": B, "listen": PORT, "target": "HOST:PORT"}]}
                bound before the relay reports ready
--control SOCK  unix socket: one JSON object per line in, one JSON reply per line out
--ready FILE    written (atomically) once every route listens: {"pid", "routes"}
--host H        the address the routes listen on (default 127.0.0.1)

Control commands ({"op": ...}); every reply is {"ok": true, ...} or {"ok": false, "error"}:
  add      {"from", "to", "listen", "target"}     a new route (bound before the reply)
  cut      {"pairs": [[A, B], ...]}              cut A->B for each pair
  heal     {"pairs": [[A, B], ...]}
  isolate  {"node": A}                           cut every route from and to A
  heal-all {}
  status   {}   {"routes": [{"from", "to", "listen", "target", "cut", "live", "accepted",
                "refused", "upstream_failed", "bytes_forward", "bytes_back"}], "cut": [[A, B]]}
  stop     {}   closes everything and exits 0

SIGTERM and SIGINT stop it too. It never sleeps to synchronise: a cut is in force when its
reply is sent.
"""

import argparse
import asyncio
import json
import os
import signal
import sys

CHUNK_BYTES = 64 * 1024          # one read from a socket
CONNECT_TIMEOUT_S = 5.0          # upstream connect bound
CONTROL_LINE_BYTES_MAX = 1 << 20 # one control command
ROUTES_MAX = 4096                # 64 nodes, every ordered pair


class Route:
    def __init__(self, src, dst, listen, target):
        self.src = str(src)
        self.dst = str(dst)
        self.listen = int(listen)
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"target must be HOST:PORT: {target!r}")
        self.target = target
        self.target_host = host.strip("[]")
        self.target_port = int(port)
        self.cut = False
        self.server = None
        self.live = set()        # (client transport, upstream transport or None)
        self.accepted = 0
        self.refused = 0
        self.upstream_failed = 0
        self.bytes_forward = 0   # src -> dst
        self.bytes_back = 0

    def key(self):
        return (self.src, self.dst)

    def abort_live(self):
        for pair in list(self.live):
            for tr in pair:
                if tr is not None:
                    tr.abort()
        self.live.clear()

    def describe(self):
        return {"from": _id(self.src), "to": _id(self.dst), "listen": self.listen,
                "target": self.target, "cut": self.cut, "live": len(self.live),
                "accepted": self.accepted, "refused": self.refused,
                "upstream_failed": self.upstream_failed, "bytes_forward": self.bytes_forward,
                "bytes_back": self.bytes_back}


def _id(text):
    return int(text) if text.isdigit() else text


class Relay:
    def __init__(self, host):
        self.host = host
        self.routes = {}
        self.stopped = asyncio.Event()

    async def add(self, spec):
        if len(self.routes) >= ROUTES_MAX:
            raise ValueError(f"at most {ROUTES_MAX} routes")
        route = Route(spec["from"], spec["to"], spec["listen"], spec["target"])
        if route.key() in self.routes:
            raise ValueError(f"route {route.src}->{route.dst} exists")
        route.server = await asyncio.start_server(
            lambda r, w: self._serve(route, r, w), self.host, route.listen, reuse_address=True)
        self.routes[route.key()] = route
        return route

    def _routes_of(self, pairs):
        found = []
        for pair in pairs:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(f"a pair is [A, B]: {pair!r}")
            key = (str(pair[0]), str(pair[1]))
            if key not in self.routes:
                raise ValueError(f"no route {key[0]}->{key[1]}")
            found.append(self.routes[key])
        return found

    def cut(self, routes):
        for route in routes:
            route.cut = True
            route.abort_live()

    @staticmethod
    def heal(routes):
        for route in routes:
            route.cut = False

    async def _serve(self, route, reader, writer):
        client = writer.transport
        if route.cut:
            route.refused += 1
            client.abort()
            return
        route.accepted += 1
        pair = [client, None]
        key = tuple(pair)
        route.live.add(key)
        try:
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(route.target_host, route.target_port),
                    CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError):
                route.upstream_failed += 1
                return
            route.live.discard(key)
            key = (client, up_writer.transport)
            if route.cut:  # cut while connecting
                up_writer.transport.abort()
                return
            route.live.add(key)
            forward = asyncio.ensure_future(self._pipe(reader, up_writer, route, "bytes_forward"))
            back = asyncio.ensure_future(self._pipe(up_reader, writer, route, "bytes_back"))
            # Either side closing ends the connection: nng does not half-close.
            _, rest = await asyncio.wait({forward, back}, return_when=asyncio.FIRST_COMPLETED)
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            up_writer.transport.abort()
        finally:
            route.live.discard(key)
            client.abort()

    @staticmethod
    async def _pipe(reader, writer, route, counter):
        try:
            while True:
                data = await reader.read(CHUNK_BYTES)
                if not data or route.cut:
                    return
                setattr(route, counter, getattr(route, counter) + len(data))
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return

    def status(self):
        routes = [r.describe() for _, r in sorted(self.routes.items())]
        cut = [[r["from"], r["to"]] for r in routes if r["cut"]]
        return {"routes": routes, "cut": cut}

    async def command(self, cmd):
        op = cmd.get("op")
        if op == "add":
            route = await self.add(cmd)
            return {"route": route.describe()}
        if op == "cut":
            self.cut(self._routes_of(cmd.get("pairs", [])))
            return self.status()
        if op == "heal":
            self.heal(self._routes_of(cmd.get("pairs", [])))
            return self.status()
        if op == "isolate":
            node = str(cmd["node"])
            routes = [r for r in self.routes.values() if node in (r.src, r.dst)]
            if not routes:
                raise ValueError(f"no route from or to {node}")
            self.cut(routes)
            return self.status()
        if op == "heal-all":
            self.heal(list(self.routes.values()))
            return self.status()
        if op == "status":
            return self.status()
        if op == "stop":
            self.stopped.set()
            return {}
        raise ValueError(f"unknown op {op!r}")

    async def control(self, reader, writer):
        try:
            while not reader.at_eof():
                line = await reader.readline()
                if not line:
                    break
                try:
                    cmd = json.loads(line)
                    if not isinstance(cmd, dict):
                        raise ValueError("a command is a JSON object")
                    reply = {"ok": True}
                    reply.update(await self.command(cmd))
                except (ValueError, KeyError, TypeError, OSError) as e:
                    reply = {"ok": False, "error": str(e)}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (OSError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    def close(self):
        for route in self.routes.values():
            route.server.close()
            route.abort_live()


async def amain(args):
    relay = Relay(args.host)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, relay.stopped.set)
    if args.routes:
        with open(args.routes) as f:
            for spec in json.load(f)["routes"]:
                await relay.add(spec)
    if os.path.exists(args.control):
        os.unlink(args.control)
    control = await asyncio.start_unix_server(relay.control, args.control,
                                              limit=CONTROL_LINE_BYTES_MAX)
    os.chmod(args.control, 0o600)
    if args.ready:
        tmp = args.ready + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"pid": os.getpid(), "routes": len(relay.routes)}, f)
        os.replace(tmp, args.ready)
    print(f"relay: {len(relay.routes)} routes, control {args.control}", flush=True)
    await relay.stopped.wait()
    control.close()
    relay.close()
    if os.path.exists(args.control):
        os.unlink(args.control)
    print("relay: stopped", flush=True)


def main():
    p = argparse.ArgumentParser(description="TCP relay with cuttable routes (see module doc)")
    p.add_argument("--control", required=True)
    p.add_argument("--routes")
    p.add_argument("--ready")
    p.add_argument("--host", default="127.0.0.1")
    args = p.parse_args()
    if len(args.control.encode()) > 107:
        print(f"relay: control socket path too long for a unix socket: {args.control}",
              file=sys.stderr)
        return 2
    try:
        asyncio.run(amain(args))
    except OSError as e:
        print(f"relay: {e}", file=sys.stderr)
        return 1
    return 0


def request(control_path, cmd, timeout_s=10.0):
    """Client side: sends one command to a running relay, returns its reply dict."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(control_path)
        s.sendall((json.dumps(cmd) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("relay closed the control connection")
            buf += chunk
    return json.loads(buf)


if __name__ == "__main__":
    sys.exit(main())
