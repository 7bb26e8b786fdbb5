"""Fan-out benchmark: one notification to N subscribed wallets, through the HTTP API, the delivery queue and
the relay, until the last wallet has decrypted it.

    wcnotify bench fanout [--wallets 10000] [--databases sqlite,postgres] [--rounds 3] [--timeout 120]
    .venv/bin/python bench/fanout.py [same options, plus --wallet-procs 2 --profile DIR]

Per database (a SQLite file, then a PostgreSQL schema of its own) the run starts, each in its own process:

* a **relay** (``RelayServer.run``, what ``wcnotify relay`` runs, in-memory mailbox), with the per-client rate
  limit and per-topic mailbox cap raised as in the relay bench (policy, not capacity; with the defaults
  nothing here would be throttled either: every wallet is its own client);
* a **notify server** (``NotifyServer.run``, what ``wcnotify server`` runs, default delivery settings; no keys
  server, as nothing in the run resolves an identity);
* ``--wallet-procs`` **wallet processes** holding N real WebSocket connections to the relay between them. Each
  wallet authenticates with its own key, subscribes to its topic, and on the ``irn_subscription`` push
  decrypts the envelope with its sym key (``protocol.crypto.decrypt``), notes the time and acks the push as
  the JS relayer does. The client is a small WebSocket framing over ``asyncio.Protocol`` (no task per
  connection), so that on a two-CPU machine the load generator takes as little CPU from the servers as it can.

Set-up: the project, its keys and its notification type go through the HTTP API (``POST /v1/projects``,
``/subscribe-topic``, ``/notification-types``). The N subscribers (``subscribers`` and ``subscriber_scopes``
rows, sym keys generated here) are inserted directly into the notify server's database: subscribing 10,000
wallets through identity registration and ``wc_notifySubscribe`` takes far longer than what is measured.
The notify server is then restarted, so that, as after any restart, it subscribes every subscriber topic at
the relay before the run.

Measured, ``--rounds`` times with the same wallets: ``POST /v1/{projectId}/notify/broadcast`` is sent at t0
(one request queues the notification for every subscriber of the type); the figure is the time from t0 until
the last wallet has decrypted it, and N divided by it is the rate in subscriber-notifications per second. The
best round is the headline (the machine is shared: other load only ever slows a round down); every round is
in the JSON. The CPU each process used during the round is shown, and "other" is what the rest of the machine
used meanwhile (from /proc/stat). After the last round every wallet checks each ``messageAuth`` it decrypted
(signature by the dapp's key, its own account as ``sub``, the dapp's did:web as ``app``, one ``msg.id`` per
delivery): done after the clock stopped, as these checks are the work of N separate devices.

The ceiling, measured in this process (before the first round and after the last, best of the two): the
``build_message`` loop alone (sign the ``messageAuth`` JWT, seal the envelope) on one core, the part of a
delivery the notify server cannot batch away. The target is an end-to-end rate of at least half of it.

Everything stays on 127.0.0.1. Every wait is bounded (``--timeout`` per round); the processes, the temporary
directory and the PostgreSQL schema are removed at the end (``WCNOTIFY_BENCH_KEEP=1`` keeps the directory:
server logs, SQLite file). ``--profile DIR`` records each process with py-spy during the rounds. The last
line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import dataclasses
import gc
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
from sqlalchemy import insert, select, text

from wcnotify import event_loop, spec
from wcnotify.notify.delivery import Delivery, ProjectSigner, build_message
from wcnotify.notify.payload_ids import next_payload_id
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.crypto import Ed25519KeyPair, EnvelopeError, decrypt, topic_of
from wcnotify.protocol.did import Account, did_web, encode_did_key
from wcnotify.protocol.jwt import JwtError, NotifyMessageClaims
from wcnotify.relay.client import relay_auth_jwt
from wcnotify.storage.engine import create_engine
from wcnotify.storage.tables import projects, subscriber_scopes, subscribers

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DOMAIN = "fanout.bench.example.com"
TITLE = "Fan-out benchmark"
BODY = "One notification to every subscriber of the type, sent with a single broadcast request."
URL = "https://fanout.bench.example.com/n/1"
POSTGRES_URL = os.environ.get("WCNOTIFY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


# ------------------------------------------------------------------------------------------ servers


def serve_relay(port: int, database_url: str | None = None) -> None:
    """The relay process: ``RelayServer.run`` as ``wcnotify relay`` calls it, rate limit and mailbox cap raised.

    ``database_url`` is its mailbox (``--database-url`` of ``wcnotify relay``); None keeps it in memory."""
    from wcnotify.relay.limits import RelayLimits  # noqa: PLC0415 (the wallet processes need no server)
    from wcnotify.relay.server import RelayConfig, RelayServer  # noqa: PLC0415

    raise_nofile()
    limits = dataclasses.replace(RelayLimits(), rate_per_second=1e9, rate_burst=10**9, mailbox_per_topic=10**7)
    RelayServer(RelayConfig(host=HOST, port=port, limits=limits, database_url=database_url)).run(log_level="warning")


def serve_notify(port: int, relay_url: str, database_url: str, admin_token: str, seed: str) -> None:
    """The notify server process: ``NotifyServer.run`` as ``wcnotify server`` calls it (default delivery)."""
    from wcnotify.notify.server import NotifyConfig, NotifyServer  # noqa: PLC0415 (see serve_relay)

    raise_nofile()
    config = NotifyConfig(relay_url=relay_url, keys_urls=("http://127.0.0.1:9",), host=HOST, port=port,
                          database_url=database_url, admin_token=admin_token, seed=seed)
    NotifyServer(config).run(log_level="warning")


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit: every wallet is a socket in the relay and in a wallet process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) and of its children that exited and were
    waited for, from /proc (Linux). The children's part is PostgreSQL's: a backend of a connection the
    notify server's pool closed during a round has exited by the round's end, and its time is then only in
    the postmaster's. The other processes have no children during a round."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all CPUs, every process), from /proc/stat."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process (the notify server's database work runs in its backends)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


def group_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each process; one that exited meanwhile is left out."""
    seconds = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            seconds[pid] = cpu_seconds(pid)
    return seconds


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds a group used between two :func:`group_cpu` readings. A process that started in between
    counts from 0 (PostgreSQL forks a backend per new connection of the notify server's pool); one that
    exited in between counts in its parent's (see :func:`cpu_seconds`), with its time from before the round too
    (an overcount, small unless the pool churns)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    """A server subprocess; its stderr goes to a log file whose tail is shown if it fails."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def start_process(name: str, args: list[str], *, port: int, tmp: Path, ready: str,
                        timeout: float = 60, module: str = "wcnotify.bench.fanout") -> Process:
    """Start ``python -m <module> <args>`` and wait until ``GET /health`` contains ``ready``."""
    log = tmp / f"{name}.log"
    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", module, *args],
                                stdout=subprocess.DEVNULL, stderr=err)
    server = Process(name, proc, port, log)
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2, trust_env=False) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                r = await http.get(f"{server.url}/health")
                if r.status_code == 200 and ready in r.text:
                    return server
            await asyncio.sleep(0.1)
    server.stop()
    raise TimeoutError(f"{name} not ready within {timeout} s:\n{server.tail()}")


# ------------------------------------------------------------------------------------------ wallets

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    stream = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + mask + masked


@dataclass(frozen=True)
class WalletSpec:
    topic: str
    sym_key: bytes
    account: str


class WalletConnection(asyncio.Protocol):
    """One wallet: a WebSocket to the relay, subscribed to its topic, decrypting what is pushed on it.

    Frames are parsed in ``data_received`` (no task per connection); what the wallet decrypted is kept, with
    the time, for the per-round figures and the signature checks after the run."""

    def __init__(self, fleet: WalletFleet, wallet: WalletSpec, request: bytes, accept: bytes) -> None:
        self.fleet = fleet
        self.wallet = wallet
        self.request = request
        self.accept = accept
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.fragments: bytearray | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.answered: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.times: list[float] = []  # monotonic time of each decrypt, in arrival order (one per round)
        self.plaintexts: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a cast, not an isinstance check: uvloop's TCPTransport is not a subclass of asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.opened, self.answered):
            if not future.done():
                future.set_exception(ConnectionError(f"relay closed the connection: {exc}"))
                future.exception()  # retrieved: nobody may be waiting any more (no "never retrieved" log)
        if self.upgraded:
            self.fleet.lost += 1

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(ws_frame(opcode, payload))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[: end + 4]
            if not head.startswith(b"HTTP/1.1 101") or self.accept not in head:
                self.opened.set_exception(ConnectionError(head.decode(errors="replace")[:300]))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            self.opened.set_result(None)
        while len(buf) >= 2:
            b0, n, start = buf[0], buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, start = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, start = int.from_bytes(buf[2:10], "big"), 10
            end = start + n
            if len(buf) < end:
                return
            payload = bytes(buf[start:end])
            del buf[:end]
            self.frame(b0 & 0x0F, bool(b0 & 0x80), payload)

    def frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode == 0x0 and self.fragments is not None:  # continuation
            self.fragments += payload
            if fin:
                payload, self.fragments = bytes(self.fragments), None
                self.fleet.on_message(self, payload)
        elif opcode in (0x1, 0x2):
            if fin:
                self.fleet.on_message(self, payload)
            else:
                self.fragments = bytearray(payload)
        elif opcode == 0x9:  # ping (uvicorn sends one every 20 s)
            self.send(0xA, payload)
        elif opcode == 0x8:
            self.send(0x8, payload[:2])
            assert self.transport is not None
            self.transport.close()


class WalletFleet:
    """The wallets of one process, and what they saw."""

    def __init__(self, relay: str, wallets: list[WalletSpec], dapp_did: str, app: str) -> None:
        self.relay = relay
        self.wallets = wallets
        self.dapp_did = dapp_did
        self.app = app
        self.connections: list[WalletConnection] = []
        self.reached: collections.Counter[int] = collections.Counter()  # k -> wallets with >= k decrypts
        self.expected = 0  # the round being waited for: "done k" once every wallet has k decrypts
        self.errors = 0
        self.lost = 0

    def on_message(self, conn: WalletConnection, payload: bytes) -> None:
        obj = orjson.loads(payload)
        if obj.get("method") == "irn_subscription":
            data = obj["params"]["data"]
            try:
                if data["topic"] != conn.wallet.topic:
                    raise EnvelopeError("pushed on another topic")
                plaintext = decrypt(data["message"], conn.wallet.sym_key)
            except (EnvelopeError, KeyError, TypeError):
                self.errors += 1
            else:
                conn.times.append(time.monotonic())
                conn.plaintexts.append(plaintext)
                self.reached[len(conn.times)] += 1
                self.announce()
            conn.send(0x1, b'{"id":%d,"jsonrpc":"2.0","result":true}' % obj["id"])
        elif not conn.answered.done():
            conn.answered.set_result(obj)

    def expect(self, k: int) -> None:
        self.expected = k
        self.announce()

    def announce(self) -> None:
        if self.expected and self.reached[self.expected] >= len(self.wallets):
            sys.stdout.write(f"done {self.expected}\n")
            sys.stdout.flush()
            self.expected = 0

    async def open(self, concurrency: int = 200) -> None:
        """Connect and subscribe every wallet (a few attempts each: a loaded relay may reset one)."""
        host, port = self.relay.removeprefix("ws://").rstrip("/").split(":")
        semaphore = asyncio.Semaphore(concurrency)
        loop = asyncio.get_running_loop()

        async def one(wallet: WalletSpec) -> None:
            async with semaphore:
                for attempt in range(3):
                    token = relay_auth_jwt(Ed25519KeyPair.generate(), self.relay, int(time.time()))
                    ws_key = base64.b64encode(os.urandom(16))
                    accept = base64.b64encode(hashlib.sha1(ws_key + _WS_GUID).digest())
                    request = (
                        f"GET /?{spec.RELAY_AUTH_QUERY_PARAM}={token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {ws_key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                    ).encode()
                    conn = WalletConnection(self, wallet, request, accept)
                    try:
                        await loop.create_connection(lambda c=conn: c, host, int(port))  # type: ignore[misc]
                        await asyncio.wait_for(conn.opened, 30)
                        frame = {"id": 1, "jsonrpc": "2.0", "method": "irn_subscribe",
                                 "params": {"topic": wallet.topic}}
                        conn.send(0x1, orjson.dumps(frame))
                        answer = await asyncio.wait_for(conn.answered, 30)
                        if "result" not in answer:
                            raise ConnectionError(f"subscribe refused: {answer}")
                    except (OSError, TimeoutError) as exc:
                        if conn.transport is not None:
                            conn.transport.close()
                        if attempt == 2:
                            raise ConnectionError(f"wallet could not connect and subscribe: {exc}") from exc
                        await asyncio.sleep(0.5)
                        continue
                    self.connections.append(conn)
                    return

        await asyncio.gather(*(one(w) for w in self.wallets))

    def report(self, starts: list[float]) -> dict[str, Any]:
        """Per round (its t0 in ``starts``), each wallet's time to decrypt; then every ``messageAuth`` checked."""
        started = time.perf_counter()
        now = int(time.time())
        verified, duplicates = 0, 0
        failures: list[str] = []
        seen: set[str] = set()  # msg.id of every delivery, across wallets and rounds
        for conn in self.connections:
            for plaintext in conn.plaintexts:
                problem = self.check(conn, plaintext, now, seen)
                if problem is None:
                    verified += 1
                    continue
                duplicates += problem == "duplicate"
                if len(failures) < 5:
                    failures.append(problem)
        rounds = [[round(c.times[k] - t0, 6) for c in self.connections if len(c.times) > k]
                  for k, t0 in enumerate(starts)]
        return {
            "wallets": len(self.connections), "decrypted": sum(len(c.times) for c in self.connections),
            "verified": verified, "duplicates": duplicates, "errors": self.errors, "lost": self.lost,
            "failures": failures, "rounds": rounds, "verify_s": round(time.perf_counter() - started, 2),
        }

    def check(self, conn: WalletConnection, plaintext: bytes, now: int, seen: set[str]) -> str | None:
        """Why a decrypted message is not a valid notification from the dapp to this wallet, or None."""
        try:
            request = jsonrpc.parse_message(plaintext)
            if not isinstance(request, jsonrpc.Request) or request.method != spec.NOTIFY_MESSAGE.method:
                return f"not a {spec.NOTIFY_MESSAGE.method} request"
            claims = NotifyMessageClaims.verify(request.params[spec.NOTIFY_MESSAGE.params_key], now=now)
        except (jsonrpc.JsonRpcError, JwtError, KeyError, TypeError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if claims.iss != self.dapp_did:
            return "messageAuth not signed by the dapp's authentication key"
        if claims.sub != Account.parse(conn.wallet.account).did_pkh or claims.app != self.app:
            return "messageAuth for another account or app"
        if claims.msg.get("title") != TITLE or claims.msg.get("body") != BODY:
            return "another notification"
        msg_id = str(claims.msg.get("id"))
        if msg_id in seen:
            return "duplicate"
        seen.add(msg_id)
        return None


async def wallets_main(spec_path: str) -> None:
    """A wallet process: connect every wallet of the spec file and print ``ready``; on stdin, ``expect k``
    prints ``done k`` once every wallet has decrypted k messages, ``report t0 t0 …`` prints one JSON line;
    exits at the end of stdin."""
    raise_nofile()
    config = orjson.loads(Path(spec_path).read_bytes())
    wallets = [WalletSpec(t, bytes.fromhex(k), a) for t, k, a in config["wallets"]]
    fleet = WalletFleet(config["relay"], wallets, config["dapp_did"], config["app"])
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        await fleet.open()
    except (ConnectionError, OSError) as exc:
        print(f"failed {exc}", flush=True)
        return
    # the wallets stand for separate devices: keep the collector's passes over thousands of connections out
    # of the CPU this process takes from the servers on a small machine
    gc.freeze()
    gc.set_threshold(50_000, 50, 50)
    print(f"ready {len(fleet.connections)}", flush=True)
    while words := (await reader.readline()).decode().split():
        if words[0] == "expect":
            fleet.expect(int(words[1]))
        elif words[0] == "report":
            sys.stdout.buffer.write(orjson.dumps(fleet.report([float(w) for w in words[1:]])) + b"\n")
            sys.stdout.flush()
    for conn in fleet.connections:
        if conn.transport is not None:
            conn.transport.close()


@dataclass
class WalletProcess:
    """A wallet process as the orchestrator drives it (line protocol on stdin/stdout)."""

    proc: asyncio.subprocess.Process

    @classmethod
    async def start(cls, spec_path: Path, module: str = "wcnotify.bench.fanout") -> WalletProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, "--serve-wallets", str(spec_path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26,
        )
        return cls(proc)

    async def line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError(f"a wallet process exited (code {await self.proc.wait()})")
        return raw.decode().strip()

    async def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


# ------------------------------------------------------------------------------------------ ceiling


def ceiling(count: int) -> float:
    """``build_message`` (sign + seal) in a loop on one core, in this process: messages per second.

    The deliveries look like the run's: the same title, body and url, checksummed accounts, uuid ids."""
    signer = ProjectSigner(os.urandom(32).hex(), DOMAIN)
    type_id = str(uuid.uuid4())
    deliveries = [
        Delivery(
            id=str(uuid.uuid4()), attempts=1, created_at=int(time.time() * 1000), type=type_id, title=TITLE,
            body=BODY, icon=None, url=URL, account=str(random_account()), sym_key=os.urandom(32).hex(),
            topic=os.urandom(32).hex(), project="p", app_domain=DOMAIN, authentication_private="",
        )
        for _ in range(count)
    ]
    now = int(time.time())
    started = time.perf_counter()
    for d in deliveries:
        build_message(d, signer, now, next_payload_id())
    return count / (time.perf_counter() - started)


def random_account() -> Account:
    """An eip155 account as a JS wallet writes it (ERC-55 checksum)."""
    return Account("eip155", "1", "0x" + os.urandom(20).hex()).checksummed()


# ------------------------------------------------------------------------------------------ profiling


def start_profilers(directory: str | None, database: str, pids: dict[str, list[int]]) -> list[subprocess.Popen[bytes]]:
    """``py-spy record`` on every process of the run (collapsed stacks, one file each), if a directory is given."""
    if directory is None:
        return []
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    Path(directory).mkdir(parents=True, exist_ok=True)
    profilers = []
    for name, group in pids.items():
        for i, pid in enumerate(group):
            out = Path(directory) / f"{database}-{name}{i if len(group) > 1 else ''}.txt"
            profilers.append(subprocess.Popen(
                [py_spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--nonblocking",
                 "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
    time.sleep(1.0)  # py-spy attaches
    return profilers


def stop_profilers(profilers: list[subprocess.Popen[bytes]]) -> None:
    for p in profilers:
        p.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    for p in profilers:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ------------------------------------------------------------------------------------------ the run


@dataclass(frozen=True)
class BenchOptions:
    """What a run measures; the defaults are the run docs/performance.md reports."""

    wallets: int = 10_000
    databases: tuple[str, ...] = ("sqlite", "postgres")
    rounds: int = 3  # broadcasts per database, with the same wallets; the best is the headline
    wallet_procs: int = 2  # processes the wallets are spread over
    timeout: float = 120.0  # s to wait for the last wallet to decrypt, per round
    ceiling_messages: int = 5_000  # build_message calls per ceiling measurement (at most --wallets)
    postgres_url: str = POSTGRES_URL
    profile: str | None = None  # a directory: py-spy samples each process during the rounds


@dataclass
class Project:
    project_id: str
    type_id: str
    dapp_did: str
    headers: dict[str, str] = field(default_factory=dict)


async def create_project(http: httpx.AsyncClient, notify_url: str, admin: str) -> Project:
    """The dapp through the HTTP API: project, subscribe-topic (its keys), one notification type."""
    r = await http.post(f"{notify_url}/v1/projects", json={"name": "fan-out bench"},
                        headers={"authorization": f"Bearer {admin}"})
    r.raise_for_status()
    created = r.json()
    headers = {"authorization": f"Bearer {created['secret']}"}
    r = await http.post(f"{notify_url}/{created['projectId']}/subscribe-topic", json={"appDomain": DOMAIN},
                        headers=headers)
    r.raise_for_status()
    dapp_did = encode_did_key(bytes.fromhex(r.json()["authenticationKey"]))
    r = await http.post(f"{notify_url}/v1/{created['projectId']}/notification-types",
                        json={"name": "alerts", "description": "fan-out bench"}, headers=headers)
    r.raise_for_status()
    return Project(created["projectId"], r.json()["id"], dapp_did, headers)


async def insert_subscribers(database_url: str, project: Project, count: int) -> list[list[str]]:
    """N subscribers of the type, straight into the notify database: ``[topic, sym key hex, account]`` each."""
    engine = create_engine(database_url)
    now_ms = int(time.time() * 1000)
    wallets = []
    try:
        async with engine.begin() as conn:
            query = select(projects.c.id).where(projects.c.project_id == project.project_id)
            pid = (await conn.execute(query)).scalar_one()
            for start in range(0, count, 1000):
                rows, scopes = [], []
                for _ in range(start, min(count, start + 1000)):
                    sym, account, sid = os.urandom(32), random_account(), str(uuid.uuid4())
                    rows.append({
                        "id": sid, "project": pid, "account": str(account), "address": f"eip155:{account.address_key}",
                        "sym_key": sym.hex(), "topic": topic_of(sym), "expiry": now_ms // 1000 + spec.THIRTY_DAYS,
                        "created_at": now_ms, "updated_at": now_ms,
                    })
                    scopes.append({"subscriber": sid, "type_id": project.type_id})
                    wallets.append([topic_of(sym), sym.hex(), str(account)])
                await conn.execute(insert(subscribers), rows)
                await conn.execute(insert(subscriber_scopes), scopes)
    finally:
        await engine.dispose()
    return wallets


async def drop_schema(postgres_url: str, schema: str) -> None:
    engine = create_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


@dataclass
class Stack:
    """The processes of one database's run and what the rounds need; :meth:`close` stops all of them."""

    options: BenchOptions
    database_url: str
    tmp: Path
    servers: dict[str, Process] = field(default_factory=dict)
    wallets: list[WalletProcess] = field(default_factory=list)
    project: Project | None = None
    setup: dict[str, float] = field(default_factory=dict)

    @property
    def notify(self) -> Process:
        return self.servers["notify"]

    def pids(self) -> dict[str, list[int]]:
        """The processes whose CPU a round reports: the servers, the wallets, this process, and PostgreSQL's
        (all of its processes: on a shared machine some of that may be other databases' work)."""
        pids = {"notify": [self.notify.proc.pid], "relay": [self.servers["relay"].proc.pid],
                "wallets": [w.proc.pid for w in self.wallets], "bench": [os.getpid()]}
        if self.database_url.startswith("postgres"):
            pids["postgres"] = postgres_pids()
        return pids

    async def start(self, http: httpx.AsyncClient) -> None:
        n = self.options.wallets
        admin, seed = os.urandom(16).hex(), os.urandom(32).hex()
        relay_port, notify_port = free_port(), free_port()
        relay_url = f"http://{HOST}:{relay_port}"
        notify_args = ["--serve-notify", str(notify_port), "--relay-url", relay_url, "--database-url",
                       self.database_url, "--admin-token", admin, "--seed", seed]
        self.servers["relay"] = await start_process("relay", ["--serve-relay", str(relay_port)], port=relay_port,
                                                    tmp=self.tmp, ready="ok")
        self.servers["notify"] = await start_process("notify", notify_args, port=notify_port, tmp=self.tmp,
                                                     ready="relay link up")
        self.project = project = await create_project(http, self.notify.url, admin)
        self.servers.pop("notify").stop()
        t = time.perf_counter()
        specs = await insert_subscribers(self.database_url, project, n)
        self.setup["insert_s"] = round(time.perf_counter() - t, 1)
        # restarted, the server subscribes every subscriber topic at the relay, as after any restart
        self.servers["notify"] = await start_process("notify", notify_args, port=notify_port, tmp=self.tmp,
                                                     ready="relay link up", timeout=60 + n / 100)
        t = time.perf_counter()
        procs = max(1, min(self.options.wallet_procs, n))
        for i in range(procs):
            path = self.tmp / f"wallets-{i}.json"
            path.write_bytes(orjson.dumps({"relay": f"ws://{HOST}:{relay_port}", "wallets": specs[i::procs],
                                           "dapp_did": project.dapp_did, "app": did_web(DOMAIN)}))
            self.wallets.append(await WalletProcess.start(path))
        for w in self.wallets:
            line = await w.line(60 + n / 50)
            if not line.startswith("ready"):
                raise RuntimeError(f"a wallet process could not connect its wallets: {line}")
        self.setup["connect_s"] = round(time.perf_counter() - t, 1)

    async def round(self, http: httpx.AsyncClient, k: int) -> tuple[float, dict[str, Any]]:
        """Broadcast notification ``k`` and wait until every wallet has decrypted it: its t0 and figures."""
        assert self.project is not None
        for w in self.wallets:
            await w.command(f"expect {k}")
        await asyncio.sleep(1.0)  # let the previous round's acks and settles finish
        cpu0 = {name: group_cpu(group) for name, group in self.pids().items()}
        busy0 = machine_busy_seconds()
        t0 = time.monotonic()
        r = await http.post(f"{self.notify.url}/v1/{self.project.project_id}/notify/broadcast",
                            headers=self.project.headers,
                            json={"notification_id": f"bench-{k}",
                                  "notification": {"type": self.project.type_id, "title": TITLE, "body": BODY,
                                                   "url": URL}})
        enqueue_s = time.monotonic() - t0
        r.raise_for_status()
        done = 0
        with contextlib.suppress(TimeoutError):
            for w in self.wallets:
                while await w.line(max(0.01, t0 + self.options.timeout - time.monotonic())) != f"done {k}":
                    pass
                done += 1
        window = time.monotonic() - t0
        cpu = {name: max(0.0, cpu_since(cpu0[name], group_cpu(group))) / window for name, group in self.pids().items()}
        cpu["other"] = max(0.0, (machine_busy_seconds() - busy0) / window - sum(cpu.values()))
        # outside the timed window: the relay pushes to the wallets before it acknowledges the publish, so the
        # server records a batch as published a moment after its last wallet decrypted it
        status_url = f"{self.notify.url}/v1/{self.project.project_id}/notifications/bench-{k}"
        settle_by = time.monotonic() + 10
        while True:
            status = (await http.get(status_url, headers=self.project.headers)).json()
            if status.get("queued") == 0 or done < len(self.wallets) or time.monotonic() > settle_by:
                break
            await asyncio.sleep(0.05)
        return t0, {"complete": done == len(self.wallets), "enqueue_s": round(enqueue_s, 3),
                    "cpu": {name: round(v, 2) for name, v in cpu.items()},
                    "status": {s: status.get(s) for s in ("queued", "published", "failed")}}

    async def report(self, starts: list[float]) -> list[dict[str, Any]]:
        reports = []
        for w in self.wallets:
            await w.command("report " + " ".join(repr(t) for t in starts))
            while not (line := await w.line(120 + self.options.wallets / 500)).startswith("{"):
                pass  # a late "done"
            reports.append(orjson.loads(line))
        return reports

    async def close(self) -> None:
        for w in self.wallets:
            await w.stop()
        for server in self.servers.values():
            server.stop()


def summarize(latencies: list[float], wallets: int) -> dict[str, Any]:
    """One round's figures from each wallet's time to decrypt (s after t0)."""
    if not latencies:
        return {"decrypted": 0, "rate": 0}
    ordered = sorted(latencies)
    return {
        "decrypted": len(ordered), "first_s": round(ordered[0], 3), "p50_s": round(statistics.median(ordered), 3),
        "p99_s": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3), "last_s": round(ordered[-1], 3),
        "rate": round(len(ordered) / ordered[-1]) if len(ordered) == wallets else 0,
    }


async def run_database(database: str, options: BenchOptions, tmp: Path) -> dict[str, Any]:
    """Every round on ``database`` (sqlite or postgres), with its own relay, notify server and wallets."""
    schema = f"fanout_{os.urandom(5).hex()}"
    if database == "sqlite":
        database_url = f"sqlite:///{tmp / 'notify.db'}"
    else:
        database_url = f"{options.postgres_url}{'&' if '?' in options.postgres_url else '?'}search_path={schema}"
    stack = Stack(options, database_url, tmp)
    n = min(options.wallets, options.ceiling_messages)
    rounds: list[dict[str, Any]] = []
    starts: list[float] = []
    try:
        async with httpx.AsyncClient(timeout=60, trust_env=False) as http:
            await stack.start(http)
            ceilings = [ceiling(n)]
            profilers = start_profilers(options.profile, database, {
                k: v for k, v in stack.pids().items() if k in ("notify", "relay", "wallets")})
            try:
                for k in range(1, options.rounds + 1):
                    t0, figures = await stack.round(http, k)
                    starts.append(t0)
                    rounds.append(figures)
                    if not figures["complete"]:
                        break
            finally:
                stop_profilers(profilers)
            ceilings.append(ceiling(n))
            reports = await stack.report(starts)
    finally:
        await stack.close()
        if database == "postgres":
            await drop_schema(options.postgres_url, schema)
    for k, figures in enumerate(rounds):
        figures.update(summarize([x for rep in reports for x in rep["rounds"][k]], options.wallets))
    best = max(rounds, key=lambda r: r["rate"])
    rates = [r["rate"] for r in rounds]
    top = max(ceilings)
    return {
        "wallets": options.wallets, "rounds": rounds, "complete": all(r["complete"] for r in rounds),
        "rate": best["rate"], "rate_median": round(statistics.median(rates)), "ceiling": round(top),
        "ceilings": [round(c) for c in ceilings], "ratio": round(best["rate"] / top, 2),
        "ratio_median": round(statistics.median(rates) / top, 2), "best_round": rounds.index(best) + 1,
        "decrypted": sum(rep["decrypted"] for rep in reports), "verified": sum(rep["verified"] for rep in reports),
        "duplicates": sum(rep["duplicates"] for rep in reports), "errors": sum(rep["errors"] for rep in reports),
        "lost": sum(rep["lost"] for rep in reports), "failures": [f for rep in reports for f in rep["failures"]][:5],
        "setup": {**stack.setup, "verify_s": max(rep["verify_s"] for rep in reports)},
    }


def run(options: BenchOptions) -> dict[str, Any]:
    """Run the whole benchmark (servers and wallets in subprocesses) and return every figure."""
    return event_loop.run(bench(options))


async def bench(options: BenchOptions) -> dict[str, Any]:
    nofile = raise_nofile()
    per_proc = -(-options.wallets // max(1, options.wallet_procs))
    if max(options.wallets, per_proc) + 500 > nofile:
        raise SystemExit(f"RLIMIT_NOFILE is {nofile}: too low for {options.wallets} wallets (raise the hard limit)")
    results: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="wcnotify-fanout-"))
    try:
        for database in options.databases:
            sub = tmp / database
            sub.mkdir()
            results[database] = await run_database(database, options, sub)
    finally:
        if os.environ.get("WCNOTIFY_BENCH_KEEP"):  # debugging: keep the servers' logs and the SQLite file
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return {
        "wallets": options.wallets, "rounds": options.rounds, "wallet_procs": options.wallet_procs,
        "cpus": os.cpu_count(), "python": platform.python_version(), "event_loop": event_loop.loop_name(),
        "target_ratio": 0.5, **results,
    }


def table(r: dict[str, Any]) -> str:
    rows = [("database", "round", "enqueue s", "p50 s", "last decrypt s", "rate/s", "notify CPU", "relay CPU",
             "postgres CPU", "wallets CPU", "bench CPU", "other CPU")]
    summary = []
    for database in ("sqlite", "postgres"):
        x = r.get(database)
        if x is None:
            continue
        for k, rd in enumerate(x["rounds"], start=1):
            cpu = rd["cpu"]
            best = "*" if k == x["best_round"] else ""
            rows.append((database, f"{k}{best}", f"{rd['enqueue_s']:.2f}", f"{rd.get('p50_s', 0):.2f}",
                         f"{rd.get('last_s', 0):.2f}", str(rd["rate"]) if rd["complete"] else "incomplete",
                         f"{cpu['notify']:.0%}", f"{cpu['relay']:.0%}",
                         f"{cpu['postgres']:.0%}" if "postgres" in cpu else "-", f"{cpu['wallets']:.0%}",
                         f"{cpu['bench']:.0%}", f"{cpu['other']:.0%}"))
        summary.append(
            f"{database}: {x['wallets']} wallets, best {x['rate']}/s (median {x['rate_median']}/s); ceiling "
            f"{x['ceiling']}/s; ratio {x['ratio']:.2f} (median {x['ratio_median']:.2f}); "
            f"{x['verified']}/{x['decrypted']} decrypted messages verified, {x['duplicates']} duplicates, "
            f"{x['errors']} errors, {x['lost']} connections lost"
            + ("" if x["complete"] else "  ** INCOMPLETE: not every wallet got it within the timeout **")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += ["", *summary, "rate = wallets / (broadcast request sent -> last wallet decrypted); ceiling = "
              "build_message (sign + seal) loop on one core, best of before/after; * = best round; target ratio >= 0.5"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    defaults = BenchOptions()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--wallets", type=int, default=defaults.wallets, help="subscribed wallets (N)")
    parser.add_argument("--databases", default=",".join(defaults.databases), help="sqlite, postgres or both")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="broadcasts per database")
    parser.add_argument("--wallet-procs", type=int, default=defaults.wallet_procs, help="wallet processes")
    parser.add_argument("--timeout", type=float, default=defaults.timeout, help="s to wait for a round")
    parser.add_argument("--postgres-url", default=defaults.postgres_url)
    parser.add_argument("--profile", metavar="DIR", help="py-spy every process during the rounds")
    parser.add_argument("--serve-relay", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-notify", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-wallets", help=argparse.SUPPRESS)
    parser.add_argument("--relay-url", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--relay-database-url", help=argparse.SUPPRESS)
    parser.add_argument("--admin-token", help=argparse.SUPPRESS)
    parser.add_argument("--seed", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_relay:
        serve_relay(args.serve_relay, args.relay_database_url)
        return
    if args.serve_notify:
        serve_notify(args.serve_notify, args.relay_url, args.database_url, args.admin_token, args.seed)
        return
    if args.serve_wallets:
        event_loop.run(wallets_main(args.serve_wallets))
        return
    databases = tuple(d.strip() for d in args.databases.split(",") if d.strip())
    if not databases or set(databases) - {"sqlite", "postgres"}:
        parser.error("--databases takes sqlite, postgres or sqlite,postgres")
    if args.wallets < 1 or args.rounds < 1:
        parser.error("--wallets and --rounds must be at least 1")
    options = BenchOptions(args.wallets, databases, args.rounds, args.wallet_procs, args.timeout,
                           postgres_url=args.postgres_url, profile=args.profile)
    result = run(options)
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
