"""The relay over real loopback sockets: every method, store-and-forward, acks, order, HTTP endpoints.

Each test starts its own relay (uvicorn, in this process) on a free 127.0.0.1 port.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from wcnotify.protocol.crypto import Ed25519KeyPair, message_id
from wcnotify.protocol.did import encode_did_key
from wcnotify.relay.client import relay_auth_jwt
from wcnotify.relay.limits import RelayLimits
from wcnotify.relay.server import RelayConfig, RelayServer
from wcnotify.relay.testing import RawRelayPeer, random_topic

from .conftest import RedisService


@pytest.fixture(params=["memory", "sqlite", "redis", "asgi"])
async def relay(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RelayServer]:
    """A relay per test, once with each mailbox backend (the same rules hold for all).

    ``redis`` is a single node with the Redis mailbox and the Redis pub/sub backplane. ``asgi`` is the memory
    mailbox under uvicorn's other WebSocket implementation, so frames take the plain ASGI path (receive loop
    and writer task) that any server without relay/ws_protocol.py gets."""
    if request.param == "asgi":
        config = RelayConfig(port=0, ws_impl="websockets")
    elif request.param == "redis":
        service: RedisService = request.getfixturevalue("redis_service")
        config = RelayConfig(port=0, redis_url=service.url, redis_prefix=service.prefix)
    else:
        url = None if request.param == "memory" else f"sqlite:///{tmp_path / 'relay.db'}"
        config = RelayConfig(port=0, database_url=url)
    async with RelayServer(config) as server:
        yield server


def publish_params(topic: str, message: str = "hello", ttl: int = 300, tag: int = 1100) -> dict[str, object]:
    return {"topic": topic, "message": message, "ttl": ttl, "tag": tag}


async def test_health_and_public_key(relay: RelayServer) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        health = await http.get(relay.http_url + "/health")
        key = await http.get(relay.http_url + "/public-key")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert key.status_code == 200
    assert key.text == relay.relay.key.public_key.hex()
    assert len(bytes.fromhex(key.text)) == 32


async def test_live_delivery_shape_and_subscription_id(relay: RelayServer) -> None:
    topic = random_topic()
    async with await RawRelayPeer.open(relay.ws_url) as sub, await RawRelayPeer.open(relay.ws_url) as pub:
        answer = await sub.call("irn_subscribe", {"topic": topic}, id="1700000000000000001")
        client_id = encode_did_key(sub.key.public_key)
        assert answer["id"] == "1700000000000000001"  # a string id stays a string
        assert answer["result"] == hashlib.sha256((topic + client_id).encode()).hexdigest()
        published = await pub.call("irn_publish", {**publish_params(topic, "m1"), "prompt": True}, id=42)
        assert published == {"id": 42, "jsonrpc": "2.0", "result": True}
        push = await sub.push()
        assert push["method"] == "irn_subscription"
        assert isinstance(push["id"], int) and 0 < push["id"] <= 2**53
        assert push["params"]["id"] == answer["result"]
        data = push["params"]["data"]
        assert data["topic"] == topic and data["message"] == "m1" and data["tag"] == 1100
        assert abs(data["publishedAt"] - time.time() * 1000) < 10_000
        assert list(data) == ["topic", "message", "publishedAt", "tag"]


async def test_store_and_forward_to_later_subscriber_after_the_answer(relay: RelayServer) -> None:
    topic = random_topic()
    async with await RawRelayPeer.open(relay.ws_url) as pub:
        for i in range(5):
            assert (await pub.call("irn_publish", publish_params(topic, f"m{i}")))["result"] is True
    async with await RawRelayPeer.open(relay.ws_url) as sub:
        answer = await sub.call("irn_subscribe", {"topic": topic})
        messages = [(await sub.push())["params"]["data"]["message"] for _ in range(5)]
        assert messages == [f"m{i}" for i in range(5)]
        # the subscribe answer came before any push
        kinds = ["answer" if "result" in f else "push" for f in sub.frames]
        assert kinds[0] == "answer" and answer["result"]


async def test_ack_is_not_redelivered_after_reconnect_but_unacked_is(relay: RelayServer) -> None:
    topic = random_topic()
    key = Ed25519KeyPair.generate()
    async with await RawRelayPeer.open(relay.ws_url) as pub:
        await pub.call("irn_publish", publish_params(topic, "acked"))
        await pub.call("irn_publish", publish_params(topic, "not-acked"))
    async with await RawRelayPeer.open(relay.ws_url, key) as sub:
        await sub.call("irn_subscribe", {"topic": topic})
        first, second = await sub.push(), await sub.push()
        assert first["params"]["data"]["message"] == "acked"
        await sub.ack(first)
        assert second["params"]["data"]["message"] == "not-acked"
        await sub.call("irn_unsubscribe", {"topic": topic})  # a round trip: the ack is stored by now
    async with await RawRelayPeer.open(relay.ws_url, key) as sub:
        await sub.call("irn_subscribe", {"topic": topic})
        again = await sub.push()
        assert again["params"]["data"]["message"] == "not-acked"
        assert await sub.no_push()
    # another client id has acknowledged nothing
    async with await RawRelayPeer.open(relay.ws_url) as other:
        await other.call("irn_subscribe", {"topic": topic})
        assert {(await other.push())["params"]["data"]["message"] for _ in range(2)} == {"acked", "not-acked"}


async def test_publisher_does_not_get_its_own_message(relay: RelayServer) -> None:
    topic = random_topic()
    async with await RawRelayPeer.open(relay.ws_url) as a, await RawRelayPeer.open(relay.ws_url) as b:
        await a.call("irn_subscribe", {"topic": topic})
        await b.call("irn_subscribe", {"topic": topic})
        await a.call("irn_publish", publish_params(topic, "from-a"))
        assert (await b.push())["params"]["data"]["message"] == "from-a"
        assert await a.no_push()
    # nor later, from the mailbox
    async with await RawRelayPeer.open(relay.ws_url, a.key) as again:
        await again.call("irn_subscribe", {"topic": topic})
        assert await again.no_push()


async def test_per_topic_order_live_and_from_mailbox(relay: RelayServer) -> None:
    topic = random_topic()
    async with await RawRelayPeer.open(relay.ws_url) as sub, await RawRelayPeer.open(relay.ws_url) as pub:
        await sub.call("irn_subscribe", {"topic": topic})
        for i in range(60):
            await pub.call("irn_publish", publish_params(topic, f"m{i:03}"))
        live = [(await sub.push())["params"]["data"]["message"] for _ in range(60)]
        assert live == [f"m{i:03}" for i in range(60)]
        # batch publish keeps order too
        batch = [publish_params(topic, f"b{i:03}") for i in range(40)]
        assert (await pub.call("irn_batchPublish", {"messages": batch}))["result"] is True
        assert [(await sub.push())["params"]["data"]["message"] for _ in range(40)] == [f"b{i:03}" for i in range(40)]
    async with await RawRelayPeer.open(relay.ws_url) as late:
        await late.call("irn_subscribe", {"topic": topic})
        got = [(await late.push())["params"]["data"]["message"] for _ in range(100)]
        assert got == [f"m{i:03}" for i in range(60)] + [f"b{i:03}" for i in range(40)]


async def test_duplicate_message_is_stored_and_delivered_once(relay: RelayServer) -> None:
    topic = random_topic()
    async with await RawRelayPeer.open(relay.ws_url) as sub, await RawRelayPeer.open(relay.ws_url) as pub:
        await sub.call("irn_subscribe", {"topic": topic})
        for _ in range(3):
            assert (await pub.call("irn_publish", publish_params(topic, "same")))["result"] is True
        await sub.push()
        assert await sub.no_push()
    async with await RawRelayPeer.open(relay.ws_url) as late:
        await late.call("irn_subscribe", {"topic": topic})
        await late.push()
        assert await late.no_push()


async def test_unsubscribe_and_batch_methods(relay: RelayServer) -> None:
    topics = [random_topic() for _ in range(3)]
    async with await RawRelayPeer.open(relay.ws_url) as sub, await RawRelayPeer.open(relay.ws_url) as pub:
        ids = (await sub.call("irn_batchSubscribe", {"topics": topics}))["result"]
        client_id = encode_did_key(sub.key.public_key)
        assert ids == [hashlib.sha256((t + client_id).encode()).hexdigest() for t in topics]
        await pub.call("irn_batchPublish", {"messages": [publish_params(t, t[:8]) for t in topics]})
        assert {(await sub.push())["params"]["data"]["message"] for _ in topics} == {t[:8] for t in topics}
        assert (await sub.call("irn_unsubscribe", {"topic": topics[0], "id": ids[0]}))["result"] is True
        subs = [{"topic": t, "id": i} for t, i in zip(topics[1:], ids[1:], strict=True)]
        assert (await sub.call("irn_batchUnsubscribe", {"subscriptions": subs}))["result"] is True
        await pub.call("irn_batchPublish", {"messages": [publish_params(t, "after") for t in topics]})
        assert await sub.no_push()
        blocking = await sub.call("irn_subscribeBlocking", {"topic": topics[0]})
        assert blocking["result"] == {"id": ids[0]}
        many = await sub.call("irn_batchSubscribeBlocking", {"topics": topics[1:]})
        assert many["result"] == [{"id": i} for i in ids[1:]]


async def test_aliases(relay: RelayServer) -> None:
    topic = random_topic()
    async with await RawRelayPeer.open(relay.ws_url) as sub, await RawRelayPeer.open(relay.ws_url) as pub:
        assert isinstance((await sub.call("iridium_subscribe", {"topic": topic}))["result"], str)
        assert (await pub.call("waku_publish", publish_params(topic, "x")))["result"] is True
        assert (await sub.push())["params"]["data"]["message"] == "x"
        assert (await sub.call("waku_unsubscribe", {"topic": topic}))["result"] is True


async def test_fetch_messages_pages_and_batch_receive() -> None:
    limits = RelayLimits(fetch_page=3)
    async with RelayServer(RelayConfig(port=0, limits=limits)) as relay:
        topic, other = random_topic(), random_topic()
        async with await RawRelayPeer.open(relay.ws_url) as pub:
            await pub.call("irn_batchPublish", {"messages": [publish_params(topic, f"m{i}") for i in range(5)]})
            await pub.call("irn_publish", publish_params(other, "o"))
        async with await RawRelayPeer.open(relay.ws_url) as reader:
            first = (await reader.call("irn_fetchMessages", {"topic": topic}))["result"]
            assert [m["message"] for m in first["messages"]] == ["m0", "m1", "m2"] and first["hasMore"] is True
            second = (await reader.call("irn_fetchMessages", {"topic": topic}))["result"]
            assert [m["message"] for m in second["messages"]] == ["m3", "m4"] and second["hasMore"] is False
            assert set(first["messages"][0]) == {"topic", "message", "publishedAt", "tag"}
            both = (await reader.call("irn_batchFetchMessages", {"topics": [topic, other]}))["result"]
            assert [m["message"] for m in both["messages"]] == ["o"]
        async with await RawRelayPeer.open(relay.ws_url) as receiver:
            receipts = [{"topic": topic, "messageId": message_id(f"m{i}")} for i in range(4)]
            assert (await receiver.call("irn_batchReceive", {"receipts": receipts}))["result"] is True
            await receiver.call("irn_subscribe", {"topic": topic})
            assert (await receiver.push())["params"]["data"]["message"] == "m4"
            assert await receiver.no_push()


# ------------------------------------------------------------------------------------------ auth


async def _refused(url: str, **kwargs: object) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, proxy=None, **kwargs):  # type: ignore[arg-type]
            pass
    return info.value.response.status_code, info.value.response.body.decode()


async def test_auth_refused_before_upgrade_with_401(relay: RelayServer) -> None:
    key = Ed25519KeyPair.generate()
    now = int(time.time())
    status, reason = await _refused(relay.ws_url + "/")
    assert status == 401 and "missing auth" in reason
    status, reason = await _refused(relay.ws_url + "/?auth=not.a.jwt")
    assert status == 401 and "invalid auth JWT" in reason
    expired = relay_auth_jwt(key, relay.ws_url, now - 3 * 86400, ttl=86400)
    status, reason = await _refused(f"{relay.ws_url}/?auth={expired}")
    assert status == 401 and "expired" in reason
    wrong_aud = relay_auth_jwt(key, "wss://relay.walletconnect.org", now)
    status, reason = await _refused(f"{relay.ws_url}/?auth={wrong_aud}")
    assert status == 401 and "aud" in reason
    good = relay_auth_jwt(key, relay.ws_url, now)
    forged = good[: -4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    status, reason = await _refused(f"{relay.ws_url}/?auth={forged}")
    assert status == 401 and "signature" in reason


async def test_auth_accepts_bearer_header_and_every_local_audience(relay: RelayServer) -> None:
    key = Ed25519KeyPair.generate()
    now = int(time.time())
    for aud in (f"ws://localhost:{relay.port}", f"ws://127.0.0.1:{relay.port}/", f"http://127.0.0.1:{relay.port}"):
        token = relay_auth_jwt(key, aud, now)
        async with connect(
            relay.ws_url, proxy=None, additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            await ws.send(orjson.dumps({"id": 1, "jsonrpc": "2.0", "method": "irn_subscribe",
                                        "params": {"topic": random_topic()}}).decode())
            assert "result" in orjson.loads(await ws.recv())


async def test_public_urls_are_accepted_audiences() -> None:
    async with RelayServer(RelayConfig(port=0, public_urls=("wss://relay.example.org/",))) as relay:
        token = relay_auth_jwt(Ed25519KeyPair.generate(), "wss://relay.example.org", int(time.time()))
        async with connect(f"{relay.ws_url}/?auth={token}", proxy=None) as ws:
            await ws.send(orjson.dumps({"id": 1, "jsonrpc": "2.0", "method": "irn_fetchMessages",
                                        "params": {"topic": random_topic()}}).decode())
            assert orjson.loads(await ws.recv())["result"] == {"messages": [], "hasMore": False}


# ---------------------------------------------------------------------------------------- /rpc


async def test_http_rpc_with_and_without_auth(relay: RelayServer) -> None:
    topic = random_topic()
    key = Ed25519KeyPair.generate()
    body = orjson.dumps({"id": "7", "jsonrpc": "2.0", "method": "irn_publish", "params": publish_params(topic, "h")})
    async with httpx.AsyncClient(trust_env=False) as http, await RawRelayPeer.open(relay.ws_url) as sub:
        await sub.call("irn_subscribe", {"topic": topic})
        missing = await http.post(relay.http_url + "/rpc", content=body)
        assert missing.status_code == 401 and "missing auth" in missing.json()["error"]
        bad = await http.post(relay.http_url + "/rpc", content=body, headers={"authorization": "Bearer x.y.z"})
        assert bad.status_code == 401
        token = relay_auth_jwt(key, relay.http_url, int(time.time()))
        auth = {"authorization": f"Bearer {token}"}
        ok = await http.post(relay.http_url + "/rpc", content=body, headers=auth)
        assert ok.status_code == 200 and ok.json() == {"id": "7", "jsonrpc": "2.0", "result": True}
        assert (await sub.push())["params"]["data"]["message"] == "h"
        sub_body = orjson.dumps({"id": 8, "jsonrpc": "2.0", "method": "irn_subscribe", "params": {"topic": topic}})
        standing = (await http.post(relay.http_url + "/rpc", content=sub_body, headers=auth)).json()
        assert standing["result"] == hashlib.sha256((topic + encode_did_key(key.public_key)).encode()).hexdigest()
        garbage = (await http.post(relay.http_url + "/rpc", content=b"{nope", headers=auth)).json()
        assert garbage["error"]["code"] == -32700
        fetch = orjson.dumps({"id": 9, "jsonrpc": "2.0", "method": "irn_fetchMessages", "params": {"topic": topic}})
        fetched = (await http.post(relay.http_url + "/rpc", content=fetch, headers=auth)).json()
        assert fetched["result"]["messages"] == []  # its own message is never returned to the publisher
