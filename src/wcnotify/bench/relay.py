"""Relay benchmark on loopback: routed messages/s, publish->deliver latency, memory per idle connection.

    wcnotify bench relay [--pairs 32] [--seconds 4] [--idle 5000] [--size 300]
    .venv/bin/python bench/relay.py [same options, plus --topics, --window, --warmup]

N publisher/subscriber WebSocket pairs send the JS relayer's frames (``irn_batchSubscribe``, ``irn_publish``,
the ``irn_subscription`` push and its ``true`` ack) through

* **relay**: our relay (``RelayServer``, the code ``wcnotify relay`` runs, in-memory mailbox) in its own
  process, with the per-client rate limit and the per-topic mailbox cap raised so they do not throttle the
  run (they are policy, not capacity), and
* **forward**: a bare ``websockets`` server in its own process that parses each frame, answers publishes
  ``true`` and forwards the push to the topic's subscribers: no auth, no mailbox, no limits. The ceiling.

Each server gets (1) a closed loop, every publisher keeping ``--window`` publishes in flight, for the max
rate and its latencies, then (2) an open loop paced at half that rate, for the latency of a relay that is
not saturated. Latency is publish-sent -> push-received, both taken in this process. Then a fresh relay
process gets ``--idle`` authenticated connections, each subscribed to one topic, and the RSS growth of that
process divided by the number of connections is the memory per idle connection.

Everything stays on 127.0.0.1; each phase is bounded. The load generator is one Python process, so on a
small machine it can be the bottleneck: the table shows its CPU use next to the server's.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wcnotify import event_loop
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.relay.client import relay_auth_jwt
from wcnotify.relay.limits import RelayLimits
from wcnotify.relay.server import RelayConfig, RelayServer

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------ servers


def serve_relay(port: int) -> None:

    limits = dataclasses.replace(RelayLimits(), rate_per_second=1e9, rate_burst=10**9, mailbox_per_topic=10**7)
    impl = os.environ.get("WCNOTIFY_BENCH_WS_IMPL")  # compare uvicorn WebSocket implementations
    config = RelayConfig(host=HOST, port=port, limits=limits)
    if impl:
        config = dataclasses.replace(config, ws_impl=impl)
    RelayServer(config).run(log_level="warning")


def serve_forward(port: int) -> None:

    topics: dict[str, set[ServerConnection]] = {}
    ids = iter(range(1, 2**53))

    async def handler(ws: ServerConnection) -> None:
        mine: list[str] = []
        try:
            async for frame in ws:
                obj = orjson.loads(frame)
                method = obj.get("method")
                if method == "irn_publish":
                    p = obj["params"]
                    data = orjson.dumps(
                        {"topic": p["topic"], "message": p["message"], "publishedAt": int(time.time() * 1000),
                         "tag": p.get("tag", 0)}
                    )
                    for sub in topics.get(p["topic"], ()):
                        if sub is not ws:
                            push = b'{"id":%d,"jsonrpc":"2.0","method":"irn_subscription","params":{"id":"%s","data":'
                            await sub.send((push % (next(ids), p["topic"].encode()) + data + b"}}").decode())
                    await ws.send(orjson.dumps({"id": obj["id"], "jsonrpc": "2.0", "result": True}).decode())
                elif method == "irn_batchSubscribe":
                    for t in obj["params"]["topics"]:
                        topics.setdefault(t, set()).add(ws)
                        mine.append(t)
                    await ws.send(orjson.dumps({"id": obj["id"], "jsonrpc": "2.0", "result": mine}).decode())
                # anything else (the acks of pushes) is read and dropped
        except ConnectionClosed:
            pass
        finally:
            for t in mine:
                topics.get(t, set()).discard(ws)

    async def main() -> None:
        async with serve(handler, HOST, port, compression=None, max_size=2**20, ping_interval=20):
            await asyncio.Future()

    event_loop.run(main())


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_server(kind: str) -> Server:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "wcnotify.bench.relay", f"--serve-{kind}", str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            time.sleep(0.2 if kind == "relay" else 0.05)  # let the app finish its startup
            return Server(kind, proc, port)
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"{kind} server did not listen within 20 s")


# ------------------------------------------------------------------------------------------ load


async def open_ws(url: str) -> ClientConnection:
    token = relay_auth_jwt(Ed25519KeyPair.generate(), url, int(time.time()))
    return await connect(f"{url}/?auth={token}", proxy=None, compression=None, max_size=2**20, open_timeout=20)


@dataclass
class Run:
    size: int
    record_from: float = 0.0
    record_to: float = float("inf")
    delivered: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0


class Pair:
    def __init__(self, pub: ClientConnection, sub: ClientConnection, topics: list[str]) -> None:
        self.pub, self.sub, self.topics = pub, sub, topics
        self.seq = 0
        self.in_flight = 0
        self.answered = asyncio.Event()

    async def subscribe(self) -> None:
        await self.sub.send(orjson.dumps({"id": 1, "jsonrpc": "2.0", "method": "irn_batchSubscribe",
                                          "params": {"topics": self.topics}}).decode())
        answer = orjson.loads(await asyncio.wait_for(self.sub.recv(), 10))
        assert isinstance(answer.get("result"), list), answer

    def frame(self, run: Run) -> str:
        self.seq += 1
        head = b"%012d%020d" % (self.seq, time.perf_counter_ns())
        message = (head + b"x" * max(0, run.size - len(head))).decode()
        topic = self.topics[self.seq % len(self.topics)]
        return orjson.dumps({"id": self.seq, "jsonrpc": "2.0", "method": "irn_publish",
                             "params": {"topic": topic, "message": message, "ttl": 300, "tag": 1100}}).decode()

    async def read_answers(self, run: Run) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.pub:
                if b'"result":true' not in (frame if isinstance(frame, bytes) else frame.encode()):
                    run.errors += 1
                self.in_flight -= 1
                self.answered.set()

    async def read_pushes(self, run: Run) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.sub:
                now = time.perf_counter_ns()
                obj = orjson.loads(frame)
                if obj.get("method") != "irn_subscription":
                    continue
                sent = int(obj["params"]["data"]["message"][12:32])
                if run.record_from <= sent / 1e9 < run.record_to:
                    run.delivered += 1
                    run.latencies_ns.append(now - sent)
                await self.sub.send(b'{"id":%d,"jsonrpc":"2.0","result":true}' % obj["id"])

    async def closed_loop(self, run: Run, window: int, until: float) -> None:
        while time.perf_counter() < until:
            while self.in_flight >= window:
                self.answered.clear()
                await self.answered.wait()
            self.in_flight += 1
            await self.pub.send(self.frame(run))

    async def paced(self, run: Run, rate: float, until: float) -> None:
        start, sent = time.perf_counter(), 0
        while (now := time.perf_counter()) < until:
            due = int((now - start) * rate) - sent
            for _ in range(due):
                self.in_flight += 1
                await self.pub.send(self.frame(run))
            sent += due
            await asyncio.sleep(0.002)


def pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6  # ms


async def load(server: Server, args: BenchOptions, rate: float | None) -> dict[str, Any]:
    """One phase against a running server: max rate (rate None) or paced at ``rate`` messages/s."""
    pairs: list[Pair] = []
    for _ in range(args.pairs):
        pub, sub = await open_ws(server.url), await open_ws(server.url)
        pairs.append(Pair(pub, sub, [os.urandom(32).hex() for _ in range(args.topics)]))
    await asyncio.gather(*(p.subscribe() for p in pairs))
    run = Run(args.size)
    readers = [asyncio.create_task(p.read_answers(run)) for p in pairs]
    readers += [asyncio.create_task(p.read_pushes(run)) for p in pairs]
    t0 = time.perf_counter()
    run.record_from, run.record_to = t0 + args.warmup, t0 + args.warmup + args.seconds
    end = run.record_to
    cpu0, self0 = server.cpu_seconds(), time.process_time()
    if rate is None:
        senders = [p.closed_loop(run, args.window, end) for p in pairs]
    else:
        senders = [p.paced(run, rate / len(pairs), end) for p in pairs]
    await asyncio.wait_for(asyncio.gather(*senders), args.warmup + args.seconds + 30)
    await asyncio.sleep(1.0)  # let the last deliveries of the window arrive
    wall = time.perf_counter() - t0
    server_seconds = server.cpu_seconds() - cpu0
    cpu = server_seconds / wall
    sent = sum(p.seq for p in pairs)
    self_cpu = (time.process_time() - self0) / wall
    for p in pairs:
        await p.pub.close()
        await p.sub.close()
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {
        "msgs_per_s": round(run.delivered / args.seconds),
        "p50_ms": round(pct(run.latencies_ns, 0.50), 2),
        "p99_ms": round(pct(run.latencies_ns, 0.99), 2),
        "delivered": run.delivered,
        "errors": run.errors,
        "server_cpu": round(cpu, 2),
        # the server's CPU per message it routed (publish in, answer out, push out, ack in), phase set-up included
        "server_us_per_msg": round(server_seconds * 1e6 / max(1, sent)),
        "bench_cpu": round(self_cpu, 2),
        "target_rate": round(rate) if rate else None,
    }


def subscribe_frame() -> str:
    params = {"topic": os.urandom(32).hex()}
    return orjson.dumps({"id": 1, "jsonrpc": "2.0", "method": "irn_subscribe", "params": params}).decode()


async def idle_memory(count: int) -> dict[str, Any]:
    server = start_server("relay")
    sockets: list[ClientConnection] = []
    try:
        warm = await open_ws(server.url)
        sockets.append(warm)
        await warm.send(subscribe_frame())
        await warm.recv()
        await asyncio.sleep(0.5)
        before = server.rss_kib()
        semaphore = asyncio.Semaphore(100)

        async def one() -> None:
            async with semaphore:
                ws = await open_ws(server.url)
                await ws.send(subscribe_frame())
                await asyncio.wait_for(ws.recv(), 20)
                sockets.append(ws)

        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), 90)
        opened_in = time.perf_counter() - t0
        await asyncio.sleep(1.0)
        after = server.rss_kib()
        return {
            "connections": count,
            "rss_before_mib": round(before / 1024, 1),
            "rss_after_mib": round(after / 1024, 1),
            "kib_per_connection": round((after - before) / count, 1),
            "open_s": round(opened_in, 1),
        }
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        server.stop()


def raise_nofile(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))  # inherited by the server processes
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass(frozen=True)
class BenchOptions:
    """What a run measures; the defaults are the run docs/performance.md reports."""

    pairs: int = 32
    topics: int = 8  # topics per pair (the publisher rotates over them)
    window: int = 16  # publishes in flight per publisher at max rate
    size: int = 300  # message bytes
    seconds: float = 4.0  # measured seconds per phase
    warmup: float = 1.0
    idle: int = 5000  # idle connections for the memory figure (0: skip it)
    # > 0: instead of the max-rate and half-rate phases, load both servers at this many msgs/s, ``repeat``
    # times, alternating: the CPU per message at a fixed load, the figure least disturbed by other load
    rate: float = 0.0
    repeat: int = 3


def run(options: BenchOptions) -> dict[str, Any]:
    """Run the whole benchmark (servers in subprocesses) and return every figure."""
    return event_loop.run(bench(options))


async def bench(args: BenchOptions) -> dict[str, Any]:
    nofile = raise_nofile(2 * args.idle + 1000)
    idle = min(args.idle, (nofile - 500) // 2)
    results: dict[str, Any] = {}
    if args.rate > 0:
        return await fixed_rate(args)
    for kind in ("relay", "forward"):
        server = start_server(kind)
        try:
            top = await load(server, args, None)
            results[kind] = {"max": top, "half": await load(server, args, top["msgs_per_s"] / 2)}
            if kind == "forward":
                # the bare server at the relay's half rate, the same absolute load: the latency this machine and
                # load generator add at that rate whatever the server does (a floor for the relay's half-rate p99)
                relay_half = results["relay"]["half"]["target_rate"]
                results[kind]["at_relay_half"] = await load(server, args, relay_half)
        finally:
            server.stop()
    memory = await idle_memory(idle) if idle > 0 else None
    return {
        "pairs": args.pairs, "topics_per_pair": args.topics, "window": args.window, "message_bytes": args.size,
        "seconds": args.seconds, "cpus": os.cpu_count(), "python": platform.python_version(),
        "event_loop": event_loop.loop_name(),
        "relay": results["relay"], "forward": results["forward"],
        "relay_vs_forward": round(
            results["relay"]["max"]["msgs_per_s"] / max(1, results["forward"]["max"]["msgs_per_s"]), 2
        ),
        "idle": memory,
    }


async def fixed_rate(args: BenchOptions) -> dict[str, Any]:
    """Each server paced at ``args.rate``, ``args.repeat`` phases each, the servers alternating."""
    runs: dict[str, list[dict[str, Any]]] = {"relay": [], "forward": []}
    servers = {kind: start_server(kind) for kind in runs}
    try:
        for _ in range(args.repeat):
            for kind, server in servers.items():
                runs[kind].append(await load(server, args, args.rate))
    finally:
        for server in servers.values():
            server.stop()
    return {"rate": args.rate, "seconds": args.seconds, "pairs": args.pairs, "cpus": os.cpu_count(),
            "python": platform.python_version(), "event_loop": event_loop.loop_name(), "fixed": runs}


def fixed_table(r: dict[str, Any]) -> str:
    lines = [f"both servers paced at {r['rate']:.0f} msgs/s, {r['seconds']} s per phase"]
    for kind, phases in r["fixed"].items():
        us = [x["server_us_per_msg"] for x in phases]
        p99 = [x["p99_ms"] for x in phases]
        lines.append(f"{kind:8} server µs/msg {us} (mean {sum(us) / len(us):.0f})   p99 ms {p99}   "
                     f"errors {sum(x['errors'] for x in phases)}")
    return "\n".join(lines)


def table(r: dict[str, Any]) -> str:
    if "fixed" in r:
        return fixed_table(r)
    rows = [("server", "phase", "msgs/s", "p50 ms", "p99 ms", "server CPU", "µs/msg", "bench CPU", "errors")]
    phases = [("relay", "max", "max rate"), ("relay", "half", "half of max"), ("forward", "max", "max rate"),
              ("forward", "half", "half of max"), ("forward", "at_relay_half", "relay's half rate")]
    for kind, phase, label in phases:
        x = r[kind].get(phase)
        if x is not None:
            rows.append((kind, label, str(x["msgs_per_s"]), f"{x['p50_ms']:.2f}", f"{x['p99_ms']:.2f}",
                         f"{x['server_cpu']:.0%}", str(x["server_us_per_msg"]), f"{x['bench_cpu']:.0%}",
                         str(x["errors"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    m = r["idle"]
    lines.append("")
    lines.append(f"relay / forward (max rate): {r['relay_vs_forward']:.2f}")
    if m:
        lines.append(f"idle connections: {m['connections']} (each subscribed to one topic), relay RSS "
                     f"{m['rss_before_mib']} -> {m['rss_after_mib']} MiB = {m['kib_per_connection']} KiB per "
                     "connection")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    defaults = BenchOptions()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--pairs", type=int, default=defaults.pairs)
    parser.add_argument("--topics", type=int, default=defaults.topics, help="topics per pair (the publisher rotates)")
    parser.add_argument("--window", type=int, default=defaults.window, help="publishes in flight per publisher")
    parser.add_argument("--size", type=int, default=defaults.size, help="message bytes")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=defaults.warmup)
    parser.add_argument("--idle", type=int, default=defaults.idle, help="idle connections (0: skip)")
    parser.add_argument("--rate", type=float, default=defaults.rate,
                        help="only pace both servers at this msgs/s (CPU per message at a fixed load)")
    parser.add_argument("--repeat", type=int, default=defaults.repeat, help="phases per server with --rate")
    parser.add_argument("--serve-relay", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-forward", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_relay:
        serve_relay(args.serve_relay)
        return
    if args.serve_forward:
        serve_forward(args.serve_forward)
        return
    options = BenchOptions(args.pairs, args.topics, args.window, args.size, args.seconds, args.warmup, args.idle,
                           args.rate, args.repeat)
    result = run(options)
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
