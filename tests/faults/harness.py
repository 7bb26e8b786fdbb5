"""What the fault tests share: a failover TCP front for relay nodes (what a load balancer does), relay nodes and
a keys server as ``wcnotify`` processes to SIGKILL, an in-process notify server on a relay of the test's choosing,
and bounded waits. The subscriber fleet, broadcast and process helpers come from ``tests/integration``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx

from tests.integration.conftest import RedisService
from tests.integration.notify_stack import ADMIN, Stack
from tests.integration.test_cli_servers import WCNOTIFY, wait_healthy
from tests.integration.test_notify_delivery import Fleet
from tests.integration.test_relay_durability import free_port
from wcnotify.notify.delivery import DeliveryConfig
from wcnotify.notify.server import NotifyConfig, NotifyServer


async def until(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> float:
    """Wait until ``condition()`` holds; the seconds it took. TimeoutError naming ``what`` past ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout} s")
        await asyncio.sleep(step)
    return time.monotonic() - started


def redeliveries(*fleets: Fleet) -> int:
    """Deliveries beyond the first per subscriber (same msg.id: the wallet drops them; not shown twice)."""
    return sum(len(ids) - 1 for fleet in fleets for ids in fleet.received.values())


def shown_once(*fleets: Fleet) -> None:
    """Every subscriber of every fleet got the notification, and all its deliveries carry one msg.id."""
    for fleet in fleets:
        fleet.once_each()
    ids = Counter(next(iter(set(ids))) for fleet in fleets for ids in fleet.received.values())
    assert all(n == 1 for n in ids.values())  # one row, one msg.id, one subscriber


# ------------------------------------------------------------------------------------ relay front


class FailoverProxy:
    """A TCP front for several relay nodes: each new connection goes to the first upstream that accepts it,
    and a connection whose upstream dies is closed on the client side too (so the client reconnects, and lands
    on a node that is alive). RelayClient and the notify server take one relay URL; this is the load balancer
    the deployment guide puts in front of the nodes."""

    def __init__(self, upstreams: list[int]) -> None:
        self.upstreams = upstreams
        self.port = free_port()
        self.routed: Counter[int] = Counter()  # upstream port -> connections sent there
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FailoverProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            for port in self.upstreams:
                try:
                    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    continue
                self.routed[port] += 1
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            writer.close()  # no node alive: the client sees a refused connection and retries
        finally:
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


# ---------------------------------------------------------------------------------- processes


class Process:
    """One ``wcnotify`` service as a process on a fixed port (so a restart comes back at the same URL)."""

    def __init__(self, args: list[str], cwd: Path, *, ready: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [WCNOTIFY, *args, "--port", str(self.port), "--log-level", "warning"]
        self.cwd = cwd
        self.ready = ready
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = subprocess.Popen(self.args, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        await asyncio.to_thread(wait_healthy, self.proc, self.url, ready=self.ready)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def relay_node(redis: RedisService, tmp: Path, *public_urls: str) -> Process:
    """A relay node on Redis (routing and mailbox), sharing the relay key with the other nodes."""
    args = ["relay", "--redis-url", redis.url, "--redis-prefix", redis.prefix, "--key-file", str(tmp / "relay.key")]
    for url in public_urls:
        args += ["--public-url", url]
    return Process(args, tmp)


def keys_process(database_url: str, tmp: Path) -> Process:
    return Process(["keys", "--database-url", database_url], tmp)


@contextlib.asynccontextmanager
async def notify_server(
    database_url: str, relay_url: str, *, keys_url: str = "http://127.0.0.1:9", delivery: DeliveryConfig | None = None,
) -> AsyncIterator[Stack]:
    """An in-process notify server linked to ``relay_url``; a :class:`Stack` with only its dapp-side helpers."""
    server = NotifyServer(NotifyConfig(
        relay_url=relay_url, keys_urls=(keys_url,), port=0, database_url=database_url, admin_token=ADMIN,
        seed="faults " + os.urandom(4).hex(), delivery=delivery or DeliveryConfig(), allow_private_urls=True,
    ))
    async with server, httpx.AsyncClient(timeout=10, trust_env=False) as http:
        await asyncio.wait_for(server.wait_relay(), 20)
        yield Stack(None, None, server, http)  # type: ignore[arg-type]


async def closing(*closers: Awaitable[None]) -> None:
    await asyncio.gather(*closers, return_exceptions=True)
