"""Several relay nodes sharing one Redis: routing across nodes, the shared mailbox, acks, TTLs, reconnects.

Two in-process nodes (each its own uvicorn on a free loopback port) with the same key prefix, and one test
with a ``wcnotify relay --redis-url`` subprocess next to an in-process node.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.jwt import WatchEventClaims
from wcnotify.relay.client import RelayHttpClient
from wcnotify.relay.limits import RelayLimits
from wcnotify.relay.server import RelayConfig, RelayServer
from wcnotify.relay.testing import RawRelayPeer, random_topic

from .conftest import RedisService
from .test_relay_durability import serving
from .test_relay_watch import Receiver, register_jwt

WCNOTIFY = shutil.which("wcnotify", path=str(Path(sys.executable).parent)) or "wcnotify"


def pub(topic: str, message: str, ttl: int = 300, tag: int = 1100) -> dict[str, object]:
    return {"topic": topic, "message": message, "ttl": ttl, "tag": tag}


class Clock:
    """Real time plus an offset both nodes share (to publish messages that expire within a second)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@contextlib.asynccontextmanager
async def nodes(
    service: RedisService, count: int = 2, clock: Clock | None = None, limits: RelayLimits | None = None
) -> AsyncIterator[list[RelayServer]]:
    config = RelayConfig(port=0, redis_url=service.url, redis_prefix=service.prefix, limits=limits or RelayLimits())
    async with contextlib.AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(RelayServer(config, clock=clock or time.time)) for _ in range(count)
        ]
        yield servers


async def test_publish_on_a_reaches_live_subscriber_on_b_and_later_subscriber_from_mailbox(
    redis_service: RedisService,
) -> None:
    async with nodes(redis_service) as (a, b):
        topic = random_topic()
        async with await RawRelayPeer.open(b.ws_url) as live, await RawRelayPeer.open(a.ws_url) as publisher:
            await live.call("irn_subscribe", {"topic": topic})
            for i in range(20):
                assert (await publisher.call("irn_publish", pub(topic, f"m{i:02}")))["result"] is True
            got = [(await live.push())["params"]["data"] for _ in range(20)]
            assert [d["message"] for d in got] == [f"m{i:02}" for i in range(20)]  # per-topic order across nodes
            assert list(got[0]) == ["topic", "message", "publishedAt", "tag"] and got[0]["tag"] == 1100
            assert await publisher.no_push(0.1)
        async with await RawRelayPeer.open(b.ws_url) as later:
            await later.call("irn_subscribe", {"topic": topic})
            assert [(await later.push())["params"]["data"]["message"] for _ in range(20)] == [
                f"m{i:02}" for i in range(20)
            ]
            assert await later.no_push()
        assert b.relay.backplane is not None and b.relay.backplane.received == 20


async def test_node_without_subscribers_for_a_topic_receives_nothing_for_it(redis_service: RedisService) -> None:
    async with nodes(redis_service, count=3) as (a, b, c):
        topic = random_topic()
        async with await RawRelayPeer.open(b.ws_url) as sub, await RawRelayPeer.open(a.ws_url) as publisher:
            await sub.call("irn_subscribe", {"topic": topic})
            await publisher.call("irn_publish", pub(topic, "only for b"))
            await sub.push()
            await sub.call("irn_unsubscribe", {"topic": topic})
            await publisher.call("irn_publish", pub(topic, "for nobody live"))
            assert await sub.no_push()
        assert b.relay.backplane is not None and c.relay.backplane is not None
        assert b.relay.backplane.received == 1  # it unsubscribed from the channel with its last subscriber
        assert c.relay.backplane.received == 0


async def test_ack_on_a_is_not_redelivered_on_b(redis_service: RedisService) -> None:
    async with nodes(redis_service) as (a, b):
        topic = random_topic()
        key = Ed25519KeyPair.generate()
        async with await RawRelayPeer.open(b.ws_url) as publisher:
            await publisher.call("irn_batchPublish", {"messages": [pub(topic, "acked"), pub(topic, "not-acked")]})
        async with await RawRelayPeer.open(a.ws_url, key) as sub:
            await sub.call("irn_subscribe", {"topic": topic})
            first, second = await sub.push(), await sub.push()
            assert first["params"]["data"]["message"] == "acked"
            assert second["params"]["data"]["message"] == "not-acked"
            await sub.ack(first)
            await sub.call("irn_unsubscribe", {"topic": topic})  # a round trip: the ack is stored by now
        async with await RawRelayPeer.open(b.ws_url, key) as again:
            await again.call("irn_subscribe", {"topic": topic})
            assert (await again.push())["params"]["data"]["message"] == "not-acked"
            assert await again.no_push()
            fetched = (await again.call("irn_fetchMessages", {"topic": topic}))["result"]
            assert [m["message"] for m in fetched["messages"]] == ["not-acked"]  # the fetch acknowledges it
        async with await RawRelayPeer.open(a.ws_url, key) as third:
            assert (await third.call("irn_fetchMessages", {"topic": topic}))["result"]["messages"] == []


async def test_dedupe_and_cap_are_shared_by_the_nodes(redis_service: RedisService) -> None:
    async with nodes(redis_service, limits=RelayLimits(mailbox_per_topic=3)) as (a, b):
        topic = random_topic()
        async with (
            await RawRelayPeer.open(a.ws_url) as on_a,
            await RawRelayPeer.open(b.ws_url) as on_b,
            await RawRelayPeer.open(b.ws_url) as sub,
        ):
            await sub.call("irn_subscribe", {"topic": topic})
            assert (await on_a.call("irn_publish", pub(topic, "same")))["result"] is True
            assert (await on_b.call("irn_publish", pub(topic, "same")))["result"] is True
            assert (await sub.push())["params"]["data"]["message"] == "same"
            assert await sub.no_push()
            await on_a.call("irn_publish", pub(topic, "two"))
            await on_b.call("irn_publish", pub(topic, "three"))
            full = await on_a.call("irn_publish", pub(topic, "four"))
            assert full["error"]["data"] == "MailboxLimitExceeded"
            full = await on_b.call("irn_batchPublish", {"messages": [pub(random_topic(), f"b{i}") for i in range(1)]
                                                          + [pub(topic, "five")]})
            assert full["error"]["data"] == "MailboxLimitExceeded"


async def test_ttl_expiry_is_honoured_and_keys_expire_by_themselves(redis_service: RedisService) -> None:
    clock = Clock()
    client = aioredis.Redis.from_url(redis_service.url)
    try:
        async with nodes(redis_service, clock=clock) as (a, b):
            topic = random_topic()
            async with await RawRelayPeer.open(a.ws_url) as publisher:
                clock.offset = -299.4  # ttl 300 s from "now" ends 0.6 s from the real now
                short_ends = time.time() + 0.6
                await publisher.call("irn_publish", pub(topic, "short"))
                clock.offset = 0.0
                await publisher.call("irn_publish", pub(topic, "long", ttl=3600))
            topic_keys = [f"{redis_service.prefix}t:{topic}:{k}".encode() for k in "qxb"]
            assert await client.exists(*topic_keys) == 3
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and time.time() < short_ends + 0.05:
                await asyncio.sleep(0.05)
            async with await RawRelayPeer.open(b.ws_url) as sub:
                await sub.call("irn_subscribe", {"topic": topic})
                assert (await sub.push())["params"]["data"]["message"] == "long"
                assert await sub.no_push()
            assert await b.relay._state().mailbox.purge(clock()) == 1  # the sweep removed "short"
            assert await client.hlen(topic_keys[2]) == 1
            # a topic whose messages all expired disappears from Redis without any sweep
            lone = random_topic()
            async with await RawRelayPeer.open(a.ws_url) as publisher:
                clock.offset = -299.5
                await publisher.call("irn_publish", pub(lone, "gone soon"))
                clock.offset = 0.0
            lone_keys = [f"{redis_service.prefix}t:{lone}:{k}".encode() for k in "qxb"]
            deadline = time.monotonic() + 5
            while await client.exists(*lone_keys) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert await client.exists(*lone_keys) == 0
    finally:
        await client.aclose()


async def test_backplane_reconnects_after_its_connection_is_killed(redis_service: RedisService) -> None:
    client = aioredis.Redis.from_url(redis_service.url)
    try:
        async with nodes(redis_service) as (a, b):
            backplane = b.relay.backplane
            assert backplane is not None
            topic = random_topic()
            async with await RawRelayPeer.open(b.ws_url) as sub, await RawRelayPeer.open(a.ws_url) as publisher:
                await sub.call("irn_subscribe", {"topic": topic})
                killed = 0
                for entry in await client.client_list():
                    if entry.get("name") == f"wcnotify-relay:{backplane.node}":
                        await client.client_kill_filter(_id=entry["id"])
                        killed += 1
                assert killed >= 1
                got: set[str] = set()
                for i in range(50):  # bounded: the node re-subscribes within a second or so
                    await publisher.call("irn_publish", pub(topic, f"after-{i}"))
                    with contextlib.suppress(TimeoutError):
                        got.add((await sub.push(timeout=0.2))["params"]["data"]["message"])
                    if got:
                        break
                assert got, "node B never heard from node A again after its pub/sub connection was killed"
    finally:
        await client.aclose()


async def test_cli_relay_with_redis_url_routes_to_another_node(redis_service: RedisService) -> None:
    async with nodes(redis_service, count=1) as (inproc,):
        with contextlib.closing(__import__("socket").socket()) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            [WCNOTIFY, "relay", "--port", str(port), "--redis-url", redis_service.url,
             "--redis-prefix", redis_service.prefix, "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            async with httpx.AsyncClient(trust_env=False) as http:
                while True:
                    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(f"http://127.0.0.1:{port}/health", timeout=1)).status_code == 200:
                            break
                    assert time.monotonic() < deadline, "wcnotify relay --redis-url did not become healthy"
                    await asyncio.sleep(0.05)
            topic = random_topic()
            url = f"ws://127.0.0.1:{port}"
            async with await RawRelayPeer.open(url) as sub, await RawRelayPeer.open(inproc.ws_url) as publisher:
                await sub.call("irn_subscribe", {"topic": topic})
                await publisher.call("irn_publish", pub(topic, "to the subprocess"))
                assert (await sub.push())["params"]["data"]["message"] == "to the subprocess"
        finally:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.parametrize("method", ["irn_subscribe", "irn_batchSubscribe"])
async def test_subscribe_then_publish_elsewhere_immediately_is_never_lost(
    redis_service: RedisService, method: str
) -> None:
    """The subscribe answer comes only once node B listens, so a publish right after it on A is live."""
    async with (
        nodes(redis_service) as (a, b),
        await RawRelayPeer.open(b.ws_url) as sub,
        await RawRelayPeer.open(a.ws_url) as publisher,
    ):
        for i in range(20):
            topic = random_topic()
            params = {"topic": topic} if method == "irn_subscribe" else {"topics": [topic]}
            await sub.call(method, params)
            await publisher.call("irn_publish", pub(topic, f"n{i}"))
            assert (await sub.push(timeout=2))["params"]["data"]["message"] == f"n{i}"


async def test_watch_registered_on_a_fires_once_for_a_publish_on_b(redis_service: RedisService) -> None:
    """Registrations and standing /rpc subscriptions are shared through Redis; one POST per event although
    both nodes see the message (the watched client is also subscribed live on both)."""
    async with serving(Receiver()) as receiver, nodes(redis_service) as (a, b):
        server_key = Ed25519KeyPair.generate()
        topic, live_topic = random_topic(), random_topic()
        async with RelayHttpClient(a.http_url, server_key) as server:
            for typ in ("subscriber", "publisher"):
                await server.request("irn_watchRegister", {
                    "registerAuth": register_jwt(server_key, a.http_url, f"{receiver.url}/{typ}", typ)})
            await server.request("irn_batchSubscribe", {"topics": [topic]})  # standing, made on node A
        # a second watched client, subscribed live on node A only: node B cannot see it, node A routes the
        # message and makes its event
        wallet_key = Ed25519KeyPair.generate()
        async with RelayHttpClient(a.http_url, wallet_key) as wallet_http:
            await wallet_http.request("irn_watchRegister", {
                "registerAuth": register_jwt(wallet_key, a.http_url, f"{receiver.url}/wallet", "subscriber")})
        async with (
            await RawRelayPeer.open(a.ws_url, server_key) as on_a,
            await RawRelayPeer.open(b.ws_url, server_key) as on_b,
            await RawRelayPeer.open(a.ws_url, wallet_key) as wallet_live,
            await RawRelayPeer.open(b.ws_url) as publisher,
        ):
            await on_a.call("irn_subscribe", {"topic": topic})
            await on_b.call("irn_subscribe", {"topic": topic})
            await wallet_live.call("irn_subscribe", {"topic": live_topic})
            await publisher.call("irn_publish", pub(topic, "for the server", tag=4000))
            await publisher.call("irn_publish", pub(live_topic, "for the wallet", tag=4000))
            (queued,) = await receiver.wait_events("subscriber", 1)
            (wallet_event,) = await receiver.wait_events("wallet", 1)
        async with RelayHttpClient(b.http_url, server_key) as server_on_b:
            await server_on_b.publish(random_topic(), "answer", ttl=300, tag=4000)
        (accepted,) = await receiver.wait_events("publisher", 1)
        now = int(time.time())
        assert WatchEventClaims.verify(queued, now=now).evt["message"] == "for the server"
        assert WatchEventClaims.verify(wallet_event, now=now).evt["message"] == "for the wallet"
        assert WatchEventClaims.verify(accepted, now=now).evt["status"] == "accepted"
        await asyncio.sleep(1.5)  # a duplicate would come within a claim round
        assert {name: len(events) for name, events in receiver.events.items()} == {
            "subscriber": 1, "wallet": 1, "publisher": 1}
        assert sum(receiver.attempts.values()) == 3


async def test_rpc_subscription_and_watch_survive_node_restart(redis_service: RedisService) -> None:
    """Both nodes restart (nothing in memory survives); Redis still holds the set-up."""
    async with serving(Receiver()) as receiver:
        server_key = Ed25519KeyPair.generate()
        topic = random_topic()
        async with nodes(redis_service, count=1) as (a,), RelayHttpClient(a.http_url, server_key) as server:
            await server.request("irn_watchRegister", {
                "registerAuth": register_jwt(server_key, a.http_url, f"{receiver.url}/sub", "subscriber")})
            await server.request("irn_batchSubscribe", {"topics": [topic]})
        async with nodes(redis_service, count=1) as (b,):
            publisher = await RawRelayPeer.open(b.ws_url)
            async with publisher:
                await publisher.call("irn_publish", pub(topic, "after restart", tag=4000))
            (event,) = await receiver.wait_events("sub", 1)
        assert WatchEventClaims.verify(event, now=int(time.time())).evt["message"] == "after restart"
