"""Every relay limit and error code over a real socket, malformed input, and a random-frame fuzz that must
not disturb another client."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wcnotify import spec
from wcnotify.relay.client import relay_auth_jwt
from wcnotify.relay.limits import RelayLimits
from wcnotify.relay.mailbox import MemoryMailbox, StoredMessage
from wcnotify.relay.server import RelayConfig, RelayServer
from wcnotify.relay.testing import Ed25519KeyPair, RawRelayPeer, random_topic
from wcnotify.spec import RELAY_MAX_TTL, RELAY_MIN_TTL

from .conftest import RedisService


def pub(topic: str, message: str = "m", ttl: int = 300, tag: int = 1) -> dict[str, object]:
    return {"topic": topic, "message": message, "ttl": ttl, "tag": tag}


async def test_limits_answer_with_codes_and_tags() -> None:
    limits = RelayLimits(mailbox_per_topic=3, max_batch=4)
    async with RelayServer(RelayConfig(port=0, limits=limits)) as relay, await RawRelayPeer.open(relay.ws_url) as c:
        topic = random_topic()
        cases = [
            ("irn_publish", pub("ab" * 32 + "0"), -32602, "InvalidTopic"),
            ("irn_publish", pub("AB" * 32), -32602, "InvalidTopic"),
            ("irn_subscribe", {"topic": "xyz"}, -32602, "InvalidTopic"),
            ("irn_publish", pub(topic, ttl=RELAY_MIN_TTL - 1), -32000, "TtlTooShort"),
            ("irn_publish", pub(topic, ttl=RELAY_MAX_TTL + 1), -32000, "TtlTooLong"),
            ("irn_publish", pub(topic, message="x" * 98_305), -32602, "MessageTooLarge"),
            ("irn_batchPublish", {"messages": []}, -32602, "BatchEmpty"),
            ("irn_batchSubscribe", {"topics": [topic] * 5}, -32602, "BatchLimitExceeded"),
            ("irn_batchFetchMessages", {"topics": []}, -32602, "BatchEmpty"),
            ("irn_batchReceive", {"receipts": [{"topic": topic, "messageId": "x"}] * 5}, -32602, "BatchLimitExceeded"),
        ]
        for method, params, code, tag in cases:
            answer = await c.call(method, params)
            assert answer["error"]["code"] == code, (method, answer)
            assert answer["error"]["data"] == tag, (method, answer)
            assert answer["error"]["message"]
        # exactly at the bounds is fine
        assert (await c.call("irn_publish", pub(topic, "x" * 98_304, ttl=RELAY_MIN_TTL)))["result"] is True
        assert (await c.call("irn_publish", pub(topic, "y", ttl=RELAY_MAX_TTL)))["result"] is True
        assert (await c.call("irn_publish", pub(topic, "z")))["result"] is True
        full = await c.call("irn_publish", pub(topic, "one too many"))
        assert full["error"] == {
            "code": -32000, "message": full["error"]["message"], "data": "MailboxLimitExceeded"
        }
        # a whole batch is refused when it would overflow, and nothing of it is stored
        other = random_topic()
        over = await c.call("irn_batchPublish", {"messages": [pub(other, f"b{i}") for i in range(4)]})
        assert over["error"]["data"] == "MailboxLimitExceeded"
        fetched = await c.call("irn_fetchMessages", {"topic": other})
        assert fetched["result"]["messages"] == []


async def test_wrong_types_and_unknown_methods_keep_the_connection() -> None:
    async with RelayServer(RelayConfig(port=0)) as relay, await RawRelayPeer.open(relay.ws_url) as c:
        topic = random_topic()
        bad_params = [
            ("irn_publish", None), ("irn_publish", [topic]), ("irn_publish", {"topic": topic}),
            ("irn_publish", {**pub(topic), "message": 5}), ("irn_publish", {**pub(topic), "ttl": "300"}),
            ("irn_publish", {**pub(topic), "ttl": True}), ("irn_publish", {**pub(topic), "tag": -1}),
            ("irn_publish", {**pub(topic), "tag": 2**32}), ("irn_subscribe", {"topic": 7}),
            ("irn_batchSubscribe", {"topics": "abc"}), ("irn_batchReceive", {"receipts": [{"topic": topic}]}),
            ("irn_batchUnsubscribe", {"subscriptions": ["x"]}), ("irn_batchPublish", {"messages": [1]}),
        ]
        for method, params in bad_params:
            answer = await c.call(method, params)
            assert answer["error"]["code"] == -32602, (method, params, answer)
        unknown = await c.call("irn_teleport", {})
        assert unknown["error"]["code"] == -32601
        assert (await c.call("eth_chainId", []))["error"]["code"] == -32601
        for frame, code in [
            ("{not json", -32700), ("[]", -32600), ("[1,2]", -32600), ("42", -32600), ('"x"', -32600),
            ('{"id":1,"method":"irn_subscribe"}', -32600), ('{"jsonrpc":"2.0","method":"irn_subscribe"}', -32600),
            ('{"id":1.5,"jsonrpc":"2.0","method":"x"}', -32600), ('{"id":1,"jsonrpc":"2.0","method":""}', -32600),
            ('{"id":1,"jsonrpc":"2.0","method":"irn_publish","params":3}', -32600), (b"\xff\xfe", -32700),
        ]:
            await c.send_raw(frame)
            error = await c.unmatched()
            assert error["error"]["code"] == code, (frame, error)
        # still serving
        assert isinstance((await c.call("irn_subscribe", {"topic": topic}))["result"], str)


async def test_rate_limit_3001_then_recovers() -> None:
    limits = RelayLimits(rate_per_second=20.0, rate_burst=10)
    async with RelayServer(RelayConfig(port=0, limits=limits)) as relay, await RawRelayPeer.open(relay.ws_url) as c:
        answers = [await c.call("irn_fetchMessages", {"topic": random_topic()}) for _ in range(15)]
        limited = [a for a in answers if "error" in a]
        assert limited, "the bucket of 10 must run dry within 15 quick requests"
        assert all(a["error"]["code"] == 3001 for a in limited)
        await asyncio.sleep(0.3)
        assert "result" in await c.call("irn_fetchMessages", {"topic": random_topic()})
        # the bucket is per client id: a second connection of the same key shares it
        async with await RawRelayPeer.open(relay.ws_url, c.key) as twin:
            results = [await twin.call("irn_fetchMessages", {"topic": random_topic()}) for _ in range(15)]
            assert any("error" in r for r in results)


async def test_oversized_frame_closes_that_socket_only() -> None:
    limits = RelayLimits(max_frame_bytes=200_000)
    async with RelayServer(RelayConfig(port=0, limits=limits)) as relay:
        big = await RawRelayPeer.open(relay.ws_url, max_size=None)
        async with big, await RawRelayPeer.open(relay.ws_url) as other:
            await big.send_raw("x" * 300_000)
            await asyncio.wait_for(big.ws.wait_closed(), 5)
            assert big.ws.close_code == 1009
            assert "result" in await other.call("irn_subscribe", {"topic": random_topic()})


def random_frame(rng: random.Random, topic: str) -> str | bytes:
    """One hostile frame: broken JSON, wrong shapes, wrong types, or a plausible request with a twist."""
    methods = ["irn_publish", "irn_subscribe", "irn_batchSubscribe", "irn_fetchMessages", "irn_batchReceive",
               "irn_unsubscribe", "irn_batchPublish", "waku_subscribe", "nope", "", "irn_subscription"]
    values: list[object] = [None, True, 0, -1, 2**64 - 1, 1.5, "", "x" * rng.randint(0, 300), topic, [], {}, [topic],
                            {"topic": topic}, "ab" * 32]
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
    if kind == 1:
        text = orjson.dumps({"id": rng.randint(1, 10**9), "jsonrpc": "2.0", "method": rng.choice(methods)}).decode()
        cut = rng.randint(0, len(text))
        return text[:cut] + "".join(rng.choice('{}[]",:0x') for _ in range(rng.randint(0, 5)))
    if kind == 2:
        return orjson.dumps(rng.choice(values)).decode()
    obj: dict[str, object] = {"id": rng.choice([rng.randint(1, 10**12), str(rng.randint(1, 10**9)), None, 1.5])}
    if rng.random() < 0.9:
        obj["jsonrpc"] = rng.choice(["2.0", "2.0", "1.0", 2])
    obj["method"] = rng.choice([*methods, rng.choice(values)])
    if kind == 3:
        obj["params"] = {k: rng.choice(values) for k in rng.sample(["topic", "message", "ttl", "tag", "topics",
                                                                    "messages", "receipts", "prompt"], 3)}
    elif kind == 4:
        obj["params"] = {"topic": topic, "message": "f" * rng.randint(0, 50), "ttl": rng.choice([300, 0, 10**10]),
                         "tag": rng.choice([0, 1, -5, "t"])}
    else:
        obj = {"id": rng.randint(1, 10**9), "jsonrpc": "2.0", rng.choice(["result", "error"]): rng.choice(values)}
    return orjson.dumps(obj).decode()


async def test_two_thousand_random_frames_get_answers_while_another_client_is_served() -> None:
    rng = random.Random(20240501)
    deadline = time.monotonic() + 30
    limits = RelayLimits(rate_burst=10_000)  # every frame counts against the bucket; this test is not about that
    async with RelayServer(RelayConfig(port=0, limits=limits)) as relay:
        topic = random_topic()
        async with await RawRelayPeer.open(relay.ws_url) as fuzzer, await RawRelayPeer.open(
            relay.ws_url
        ) as sub, await RawRelayPeer.open(relay.ws_url) as pub_peer:
            await sub.call("irn_subscribe", {"topic": topic})
            sent = 0
            for i in range(2_100):
                assert time.monotonic() < deadline
                await fuzzer.send_raw(random_frame(rng, topic))
                sent += 1
                if i % 100 == 0:  # the bystander keeps being served throughout
                    await pub_peer.call("irn_publish", pub(topic, f"live-{i}"))
                    for _ in range(200):  # the fuzzer publishes valid messages on the topic too
                        push = await sub.push()
                        await sub.ack(push)
                        if push["params"]["data"]["message"] == f"live-{i}":
                            break
                    else:
                        pytest.fail(f"live-{i} never arrived")
            # the fuzzer's connection survived and still answers
            final = await fuzzer.call("irn_fetchMessages", {"topic": random_topic()}, timeout=10)
            assert final["result"] == {"messages": [], "hasMore": False}
            assert sent >= 2_000
            # every answer the fuzzer got is well-formed JSON-RPC
            for frame in fuzzer.frames:
                assert frame.get("jsonrpc") == "2.0"
                if "error" in frame:
                    assert isinstance(frame["error"]["code"], int) and isinstance(frame["error"]["message"], str)
            assert not fuzzer.ws.close_code


@pytest.mark.parametrize("backend", ["memory", "suspending", "sqlite", "redis"])
@pytest.mark.parametrize("method", ["irn_subscribe", "irn_batchSubscribe"])
async def test_subscribe_answers_even_when_closed_right_after(
    method: str, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A client that subscribes and closes at once: the relay carries on, and once the connection is gone no
    subscription of it is left routed, even when the close arrived while the subscribe was still reading the
    mailbox (the session is closed only after the frame in hand is finished)."""
    async with relay_server(backend, request, tmp_path, RelayLimits()) as relay:
        topics = [random_topic() for _ in range(20)]
        for _ in range(5):
            c = await RawRelayPeer.open(relay.ws_url)
            for n, half in enumerate((topics[:10], topics[10:])):  # the second waits behind the first
                params = {"topic": half[0]} if method == "irn_subscribe" else {"topics": half}
                await c.send_raw(orjson.dumps({"id": n, "jsonrpc": "2.0", "method": method, "params": params}).decode())
            await c.close()
        async with await RawRelayPeer.open(relay.ws_url) as other:
            assert "result" in await other.call("irn_fetchMessages", {"topic": random_topic()})
        with contextlib.suppress(ConnectionClosed):
            await c.ws.send("x")
        router = relay.relay.state.router  # type: ignore[union-attr]
        deadline = time.monotonic() + 5
        while relay.relay.connections or any(router.subscribers(t) for t in topics):
            assert time.monotonic() < deadline, "a closed connection is still routed"
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
async def test_large_backlog_comes_in_pages_instead_of_closing_the_socket(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """30 topics x 40 messages = 1,200 pending, an outbox of 100 frames and pages of 50: an acking subscriber
    gets all of it in publish order per topic (plus a live message published mid-drain, once); one that never
    acks gets one page and stays connected."""
    limits = RelayLimits(backlog_page=50, max_outbox=100, rate_burst=10_000)
    config = relay_config(backend, request, tmp_path, limits)
    topics = [random_topic() for _ in range(30)]
    async with RelayServer(config) as relay, await RawRelayPeer.open(relay.ws_url) as publisher:
        for topic in topics:
            batch = [pub(topic, f"{topic[:4]}-{i:02}") for i in range(40)]
            assert (await publisher.call("irn_batchPublish", {"messages": batch}))["result"] is True
        async with await RawRelayPeer.open(relay.ws_url) as lazy:
            await lazy.call("irn_batchSubscribe", {"topics": topics})
            assert len([await lazy.push() for _ in range(50)]) == 50
            assert await lazy.no_push(0.3)
            assert (await lazy.call("irn_fetchMessages", {"topic": random_topic()}))["result"]["messages"] == []
        async with await RawRelayPeer.open(relay.ws_url) as reader:
            await reader.call("irn_batchSubscribe", {"topics": topics})
            got: dict[str, list[str]] = {}
            for n in range(1201):
                push = await reader.push()
                await reader.ack(push)
                data = push["params"]["data"]
                got.setdefault(data["topic"], []).append(data["message"])
                if n == 100:  # mid-drain: must come once, after that topic's backlog
                    await publisher.call("irn_publish", pub(topics[-1], "live"))
            assert await reader.no_push(0.3)
            for topic in topics[:-1]:
                assert got[topic] == [f"{topic[:4]}-{i:02}" for i in range(40)]
            assert got[topics[-1]] == [f"{topics[-1][:4]}-{i:02}" for i in range(40)] + ["live"]


class SuspendingMailbox(MemoryMailbox):
    """The memory mailbox, but every call suspends once: frames handled inline (relay/ws_protocol.py) then
    take the path where a task finishes the call and the frames behind it wait in order."""

    async def put(self, messages: Any, now: float) -> list[bool]:
        await asyncio.sleep(0)
        return await super().put(messages, now)

    async def pending(self, *args: Any, **kwargs: Any) -> list[StoredMessage]:
        await asyncio.sleep(0.005)
        return await super().pending(*args, **kwargs)


def relay_server(backend: str, request: pytest.FixtureRequest, tmp_path: Path, limits: RelayLimits) -> RelayServer:
    """A relay on a free port with its mailbox in memory (suspending or not), in SQLite or in Redis."""
    if backend == "suspending":
        return RelayServer(RelayConfig(port=0, limits=limits), mailbox=SuspendingMailbox(limits.mailbox_per_topic))
    return RelayServer(relay_config(backend, request, tmp_path, limits))


def relay_config(backend: str, request: pytest.FixtureRequest, tmp_path: Path, limits: RelayLimits) -> RelayConfig:
    """A relay on a free port with its mailbox in memory, in SQLite or in Redis."""
    if backend == "redis":
        service: RedisService = request.getfixturevalue("redis_service")
        return RelayConfig(port=0, redis_url=service.url, redis_prefix=service.prefix, limits=limits)
    url = None if backend == "memory" else f"sqlite:///{tmp_path / 'relay.db'}"
    return RelayConfig(port=0, database_url=url, limits=limits)


@pytest.mark.parametrize("backend", ["memory", "suspending", "sqlite", "redis"])
async def test_a_burst_of_pipelined_requests_is_answered_in_order_past_the_read_high_water_mark(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Over the memory mailbox frames go to the session as they arrive; a call that suspends holds the next
    ones in order, and past RELAY_WS_READ_HIGH_WATER waiting reading pauses until they are handled
    (relay/ws_protocol.py). SQLite and Redis take the ASGI path, which pauses at the same mark.
    20 times that many 4 KiB publishes in one burst (several socket reads'
    worth, so reading really pauses and resumes): every one answered, in the order sent."""
    count = 20 * spec.RELAY_WS_READ_HIGH_WATER
    limits = RelayLimits(rate_burst=10 * count)
    async with relay_server(backend, request, tmp_path, limits) as relay, \
            await RawRelayPeer.open(relay.ws_url) as peer:
        frames = [orjson.dumps({"id": i + 1, "jsonrpc": "2.0", "method": "irn_publish",
                                "params": pub(random_topic(), f"{i:04d}" + "x" * 4096)}).decode()
                  for i in range(count)]
        await asyncio.gather(*(peer.send_raw(f) for f in frames))
        # a socket left paused stalls until a keepalive ping wakes it: no answer may take that long
        answers = await asyncio.wait_for(asyncio.gather(*(peer.unmatched(timeout=5) for _ in range(count))), 5)
        assert [a["id"] for a in answers] == list(range(1, count + 1))
        assert all(a.get("result") is True for a in answers), [a for a in answers if "result" not in a][:3]


async def test_a_client_that_stops_reading_is_closed_with_1013_and_its_messages_wait_in_the_mailbox() -> None:
    """A subscriber stops reading (its library stops reading the socket: max_queue=1) while 16 KiB messages
    keep coming for it. Once the kernel's and the transport's buffers are full, at most ``max_outbox`` frames
    wait in the relay; the next one closes it with 1013 (relay/ws_protocol.py), at once rather than after a
    drain it would never allow. Another client is served throughout; what the slow one never acknowledged is
    in the mailbox for its next connection."""
    limits = RelayLimits(max_outbox=20, rate_burst=100_000, mailbox_per_topic=10_000)
    topic, count = random_topic(), 2_000  # 32 MB: well past what loopback socket buffers hold
    body = "y" * (16 * 1024)
    async with RelayServer(RelayConfig(port=0, limits=limits)) as relay, \
            await RawRelayPeer.open(relay.ws_url) as publisher, await RawRelayPeer.open(relay.ws_url) as other:
        key = Ed25519KeyPair.generate()
        token = relay_auth_jwt(key, relay.ws_url, int(time.time()))
        async with connect(f"{relay.ws_url}/?auth={token}", proxy=None, compression=None, max_queue=1,
                           close_timeout=1) as slow:
            await slow.send(orjson.dumps({"id": 1, "jsonrpc": "2.0", "method": "irn_subscribe",
                                          "params": {"topic": topic}}).decode())
            assert orjson.loads(await slow.recv())["result"]
            for n in range(count):
                answer = await publisher.call("irn_publish", pub(topic, f"{n:05d}{body}"))
                assert answer["result"] is True, answer
                if n % 500 == 0:  # the other client gets its answers while the slow one's frames pile up
                    assert (await other.call("irn_fetchMessages", {"topic": random_topic()}))["result"]
            received = 0
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(slow.recv(), 10)
                    received += 1
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013, closed.value
            assert "too slow" in closed.value.rcvd.reason
            assert 0 < received < count
        async with await RawRelayPeer.open(relay.ws_url, key) as again:
            await again.call("irn_subscribe", {"topic": topic})
            first = await again.push()
            assert first["params"]["data"]["message"][:5] == "00000"  # nothing was acknowledged
