"""The relay as a real process (``wcnotify relay``) with the SQLite mailbox: kill -9 and restart lose nothing
that was answered ``true``, acks survive, and RelayClient reconnects and re-subscribes on its own. Watch
registrations, standing ``POST /rpc`` subscriptions and undelivered webhook events survive it too."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.jwt import WatchEventClaims
from wcnotify.relay.client import RelayClient, RelayHttpClient
from wcnotify.relay.testing import RawRelayPeer, random_topic

from .test_relay_watch import Receiver, register_jwt


@contextlib.asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[Receiver]:
    task = asyncio.create_task(receiver.server.serve(sockets=[receiver.sock]))
    while not receiver.server.started:
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        receiver.server.should_exit = True
        await task

WCNOTIFY = shutil.which("wcnotify", path=str(Path(sys.executable).parent)) or "wcnotify"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RelayProcess:
    def __init__(self, port: int, db: Path, key_file: Path, *extra: str) -> None:
        self.port = port
        self.db = db
        self.key_file = key_file
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [WCNOTIFY, "relay", "--port", str(self.port), "--database-url", f"sqlite:///{self.db}",
             "--key-file", str(self.key_file), "--log-level", "warning", *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise RuntimeError(f"relay exited with {self.proc.returncode}: {out}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError("relay did not become healthy within 20 s")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def relay_process(tmp_path: Path) -> Iterator[RelayProcess]:
    process = RelayProcess(free_port(), tmp_path / "relay.db", tmp_path / "relay.key")
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def test_publish_kill9_restart_subscribe_delivers(relay_process: RelayProcess) -> None:
    topic = random_topic()
    async with RelayHttpClient(f"http://127.0.0.1:{relay_process.port}") as http:
        await http.publish(topic, "survives kill -9", ttl=600, tag=1234)
    async with await RawRelayPeer.open(relay_process.ws_url) as pub:
        await pub.call("irn_batchPublish", {"messages": [
            {"topic": topic, "message": f"batch-{i}", "ttl": 600, "tag": 1} for i in range(3)]})
    key_before = httpx.get(f"http://127.0.0.1:{relay_process.port}/public-key", trust_env=False).text
    relay_process.kill9()
    relay_process.start()
    assert httpx.get(f"http://127.0.0.1:{relay_process.port}/public-key", trust_env=False).text == key_before
    reader_key = Ed25519KeyPair.generate()
    async with await RawRelayPeer.open(relay_process.ws_url, reader_key) as sub:
        await sub.call("irn_subscribe", {"topic": topic})
        pushes = [await sub.push() for _ in range(4)]
        expected = ["survives kill -9", "batch-0", "batch-1", "batch-2"]
        assert [p["params"]["data"]["message"] for p in pushes] == expected
        assert pushes[0]["params"]["data"]["tag"] == 1234
        for p in pushes[:2]:
            await sub.ack(p)
        await sub.call("irn_unsubscribe", {"topic": topic})
    relay_process.kill9()
    relay_process.start()
    async with await RawRelayPeer.open(relay_process.ws_url, reader_key) as sub:
        await sub.call("irn_subscribe", {"topic": topic})
        again = [await sub.push() for _ in range(2)]
        assert [p["params"]["data"]["message"] for p in again] == ["batch-1", "batch-2"]
        assert await sub.no_push()


async def test_client_reconnects_and_resubscribes_after_relay_restart(relay_process: RelayProcess) -> None:
    topics = [random_topic() for _ in range(3)]
    client = RelayClient(relay_process.ws_url, reconnect_min=0.05, reconnect_max=0.5, request_timeout=5)
    async with client:
        await client.batch_subscribe(topics[:2])
        await client.subscribe(topics[2])
        async with RelayClient(relay_process.ws_url) as publisher:
            await publisher.publish(topics[0], "before", ttl=600)
            first = await client.next_message(timeout=5)
            assert (first.topic, first.message) == (topics[0], "before")
        relay_process.kill9()
        relay_process.start()
        deadline = time.monotonic() + 15
        while client.connects < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert client.connects >= 2
        async with RelayClient(relay_process.ws_url) as publisher:
            # the re-subscribe is asynchronous: publish and wait for it (bounded)
            for topic in topics:
                await publisher.publish(topic, f"after-{topic[:6]}", ttl=600)
            want = {f"after-{t[:6]}" for t in topics}
            got: set[str] = set()
            for _ in range(10):  # "before" may come again: its ack raced the kill (at-least-once)
                got.add((await client.next_message(timeout=10)).message)
                if want <= got:
                    break
        assert want <= got


async def test_watch_and_rpc_subscription_survive_kill9(relay_process: RelayProcess) -> None:
    """The notify server's set-up (a watch and an HTTP subscription) outlives the relay process."""
    async with serving(Receiver()) as receiver:
        await _watch_and_rpc_subscription_survive_kill9(relay_process, receiver)


async def _watch_and_rpc_subscription_survive_kill9(relay_process: RelayProcess, receiver: Receiver) -> None:
    server_key = Ed25519KeyPair.generate()
    topic = random_topic()
    async with RelayHttpClient(relay_process.http_url, server_key) as server:
        for typ in ("subscriber", "publisher"):
            await server.request("irn_watchRegister", {
                "registerAuth": register_jwt(server_key, relay_process.http_url, f"{receiver.url}/{typ}", typ)})
        await server.request("irn_batchSubscribe", {"topics": [topic]})
    relay_process.kill9()
    relay_process.start()
    async with await RawRelayPeer.open(relay_process.ws_url) as wallet:
        await wallet.call("irn_publish", {"topic": topic, "message": "after restart", "ttl": 600, "tag": 4000})
    async with RelayHttpClient(relay_process.http_url, server_key) as server:
        await server.publish(topic, "answer", ttl=600, tag=4000)
    (queued,) = await receiver.wait_events("subscriber", 1)
    (accepted,) = await receiver.wait_events("publisher", 1)
    now = int(time.time())
    assert WatchEventClaims.verify(queued, now=now).evt["message"] == "after restart"
    assert WatchEventClaims.verify(accepted, now=now).evt["message"] == "answer"
    await asyncio.sleep(0.3)
    assert len(receiver.events["subscriber"]) == 1 and len(receiver.events["publisher"]) == 1


async def test_undelivered_events_are_delivered_after_kill9(tmp_path: Path) -> None:
    """A receiver that fails for a while; the relay dies with events in its retry queue; after the restart
    the receiver gets each of them once."""
    process = RelayProcess(free_port(), tmp_path / "relay.db", tmp_path / "relay.key", "--watch-retry-base", "2")
    process.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(process.stop)
        receiver = await stack.enter_async_context(serving(Receiver(fail_first=3)))
        key = Ed25519KeyPair.generate()
        async with RelayHttpClient(process.http_url, key) as server:
            await server.request("irn_watchRegister", {
                "registerAuth": register_jwt(key, process.http_url, f"{receiver.url}/pub", "publisher")})
            for i in range(3):
                await server.publish(random_topic(), f"event {i}", ttl=600, tag=4000)
        deadline = time.monotonic() + 10
        while receiver.attempts.get("pub", 0) < 3:  # each event's first attempt answered 503; next in 2 s
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        # let the relay record the retries (an event killed mid-POST would wait out its 30 s claim lease)
        await asyncio.sleep(0.5)
        process.kill9()
        assert not receiver.events
        process.start()
        events = await receiver.wait_events("pub", 3, timeout=15)
        messages = sorted(WatchEventClaims.verify(e, now=int(time.time())).evt["message"] for e in events)
        assert messages == ["event 0", "event 1", "event 2"]
        await asyncio.sleep(0.5)
        assert len(receiver.events["pub"]) == 3
