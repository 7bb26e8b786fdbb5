"""The relay core driven with bytes and a number for a clock: no sockets, no sleeping."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest

from wcnotify.protocol.crypto import message_id
from wcnotify.relay.core import RelayIdGenerator, RelaySession, RelayState, canonical_method, subscription_id
from wcnotify.relay.limits import RelayLimits, TokenBucket
from wcnotify.relay.mailbox import MailboxFullError, MemoryMailbox, StoredMessage
from wcnotify.spec import RelayMethod

T1, T2 = "a" * 64, "b" * 64
NOW = 1_700_000_000.0


class Wire:
    """A session's output, decoded."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def emit(self, frame: bytes) -> None:
        self.frames.append(orjson.loads(frame))

    def take(self) -> list[dict[str, Any]]:
        out, self.frames = self.frames, []
        return out


def session(state: RelayState, client: str) -> tuple[RelaySession, Wire]:
    wire = Wire()
    return RelaySession(state, client, wire.emit), wire


def req(method: str, params: Any, rid: Any = 1) -> bytes:
    return orjson.dumps({"id": rid, "jsonrpc": "2.0", "method": method, "params": params})


def pub(topic: str, message: str, ttl: int = 300) -> dict[str, Any]:
    return {"topic": topic, "message": message, "ttl": ttl, "tag": 7}


def test_token_bucket_refills_with_time_and_ignores_a_clock_going_back() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(-10.0)
    assert bucket.take(0.5)  # one token back after half a second
    assert not bucket.take(0.5)
    assert bucket.is_full(100.0)


def test_relay_ids_increase_and_stay_below_2_53() -> None:
    ids = RelayIdGenerator()
    values = [ids.next(NOW) for _ in range(1000)]
    assert values == sorted(set(values))
    assert all(v <= 2**53 for v in values)
    assert ids.next(NOW - 100) > values[-1]


def test_aliases_and_subscription_id() -> None:
    assert canonical_method("iridium_publish") is RelayMethod.PUBLISH
    assert canonical_method("waku_batchSubscribe") is RelayMethod.BATCH_SUBSCRIBE
    assert canonical_method("irn_nope") is None
    assert subscription_id(T1, "did:key:z6Mk") == hashlib.sha256((T1 + "did:key:z6Mk").encode()).hexdigest()


async def test_publish_routes_to_others_and_ack_stops_redelivery() -> None:
    state = RelayState(MemoryMailbox(10))
    alice, a_wire = session(state, "alice")
    bob, b_wire = session(state, "bob")
    await bob.receive(req("irn_subscribe", {"topic": T1}, "s1"), NOW)
    assert b_wire.take() == [{"id": "s1", "jsonrpc": "2.0", "result": subscription_id(T1, "bob")}]
    await alice.receive(req("irn_publish", pub(T1, "hi"), 5), NOW)
    assert a_wire.take() == [{"id": 5, "jsonrpc": "2.0", "result": True}]
    (push,) = b_wire.take()
    assert push["params"]["data"] == {"topic": T1, "message": "hi", "publishedAt": int(NOW * 1000), "tag": 7}
    await bob.receive(orjson.dumps({"id": push["id"], "jsonrpc": "2.0", "result": True}), NOW)
    bob.close()
    again, wire = session(state, "bob")
    await again.receive(req("irn_subscribe", {"topic": T1}), NOW + 1)
    assert len(wire.take()) == 1  # only the answer


async def test_expired_messages_are_not_delivered_and_purged() -> None:
    mailbox = MemoryMailbox(10)
    state = RelayState(mailbox)
    alice, _ = session(state, "alice")
    await alice.receive(req("irn_publish", pub(T1, "short", ttl=300)), NOW)
    bob, wire = session(state, "bob")
    await bob.receive(req("irn_subscribe", {"topic": T1}), NOW + 301)
    assert len(wire.take()) == 1
    assert await mailbox.purge(NOW + 301) == 0  # already dropped when read
    await alice.receive(req("irn_publish", pub(T2, "x", ttl=300)), NOW)
    assert await mailbox.purge(NOW + 1000) == 1


class SlowMailbox(MemoryMailbox):
    """``pending`` waits for a gate, so a publish can land while a subscriber's backlog is being read."""

    def __init__(self) -> None:
        super().__init__(100)
        self.gate = asyncio.Event()
        self.reading = asyncio.Event()

    async def pending(
        self, client: str, topics: Sequence[str], now: float, limit: int, after: Mapping[str, int] | None = None
    ) -> list[StoredMessage]:
        found = await super().pending(client, topics, now, limit, after)
        self.reading.set()
        await self.gate.wait()
        return found


async def test_live_messages_wait_behind_the_backlog_and_are_not_doubled() -> None:
    mailbox = SlowMailbox()
    state = RelayState(mailbox)
    alice, _ = session(state, "alice")
    await alice.receive(req("irn_publish", pub(T1, "old")), NOW)
    bob, wire = session(state, "bob")
    subscribing = asyncio.create_task(bob.receive(req("irn_subscribe", {"topic": T1}), NOW))
    await mailbox.reading.wait()
    await alice.receive(req("irn_publish", pub(T1, "new")), NOW)
    assert wire.take() == []  # held while the backlog is read
    mailbox.gate.set()
    await subscribing
    frames = wire.take()
    assert "result" in frames[0]
    assert [f["params"]["data"]["message"] for f in frames[1:]] == ["old", "new"]


async def test_errors_do_not_end_the_session_and_rate_limit_is_per_client() -> None:
    state = RelayState(MemoryMailbox(10), limits=RelayLimits(rate_per_second=1.0, rate_burst=2))
    alice, wire = session(state, "alice")
    twin, twin_wire = session(state, "alice")
    await alice.receive(b"nonsense", NOW)
    await alice.receive(req("irn_fetchMessages", {"topic": T1}), NOW)
    await twin.receive(req("irn_fetchMessages", {"topic": T1}), NOW)
    assert wire.take()[0]["error"]["code"] == -32700
    assert twin_wire.take()[0]["error"]["code"] == 3001  # the twin shares alice's bucket
    await twin.receive(req("irn_fetchMessages", {"topic": T1}), NOW + 1)
    assert "result" in twin_wire.take()[0]


async def test_memory_mailbox_rules() -> None:
    box = MemoryMailbox(2)
    m = [StoredMessage(T1, f"m{i}", message_id(f"m{i}"), 0, 0, NOW + 300, "p") for i in range(3)]
    assert await box.put(m[:2], NOW) == [True, True]
    assert await box.put(m[:1], NOW) == [False]
    with pytest.raises(MailboxFullError):
        await box.put(m[2:], NOW)
    assert [x.message for x in await box.pending("c", [T1], NOW, 10)] == ["m0", "m1"]
    assert await box.pending("p", [T1], NOW, 10) == []
    await box.ack("c", [(T1, m[0].message_id), (T2, "unknown")], NOW)
    assert [x.message for x in await box.pending("c", [T1], NOW, 10)] == ["m1"]
    assert await box.put(m[2:], NOW + 301) == [True]  # the old ones expired, room again


class BrokenMailbox(MemoryMailbox):
    """A mailbox whose storage is away (a Redis restarting): every call raises."""

    async def put(self, messages: Sequence[StoredMessage], now: float) -> list[bool]:
        raise ConnectionError("storage is restarting")

    async def ack(self, client: str, receipts: Any, now: float) -> None:
        raise ConnectionError("storage is restarting")


async def test_storage_failure_is_answered_with_internal_error_and_the_session_carries_on() -> None:
    state = RelayState(BrokenMailbox(10))
    s, wire = session(state, "did:key:a")
    await s.receive(req("irn_publish", pub(T1, "x"), rid=5), NOW)
    [answer] = wire.take()
    assert answer["id"] == 5 and answer["error"]["code"] == -32603
    await s.receive(orjson.dumps({"id": 123, "jsonrpc": "2.0", "result": True}), NOW)  # an ack that cannot be stored
    await s.receive(req("irn_subscribe", {"topic": T1}, rid=6), NOW)
    assert wire.take()[0]["result"] == subscription_id(T1, "did:key:a")
