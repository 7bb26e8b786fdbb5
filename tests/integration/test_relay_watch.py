"""Watch webhooks against a real HTTP receiver that fails for a while and then recovers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.did import encode_did_key
from wcnotify.protocol.jwt import WatchEventClaims, WatchRegisterClaims, WatchUnregisterClaims
from wcnotify.relay.client import RelayHttpClient, RelayRequestError
from wcnotify.relay.server import RelayConfig, RelayServer
from wcnotify.relay.testing import RawRelayPeer, random_topic
from wcnotify.serving import bind_socket
from wcnotify.spec import DAY, NOTIFY_SERVER_WATCHED_TAGS, THIRTY_DAYS


class Receiver:
    """An HTTP server that answers ``fail_first`` requests per path with 503, then ``status``."""

    def __init__(self, fail_first: int = 0, status: int = 200) -> None:
        self.fail_first = fail_first
        self.status = status
        self.attempts: dict[str, int] = {}
        self.events: dict[str, list[str]] = {}
        self.sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        app = Starlette(routes=[Route("/{name}", self.hook, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))

    async def hook(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.attempts[name] = self.attempts.get(name, 0) + 1
        if self.attempts[name] <= self.fail_first:
            return Response(status_code=503)
        body = await request.json()
        self.events.setdefault(name, []).extend(body["eventAuth"])
        return Response(status_code=self.status)

    async def wait_events(self, name: str, count: int, timeout: float = 10) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.events.get(name, [])) < count:
            assert time.monotonic() < deadline, f"{name}: {self.events.get(name)} after {self.attempts.get(name)}"
            await asyncio.sleep(0.02)
        return self.events[name]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(fail_first=3)
    task = asyncio.create_task(r.server.serve(sockets=[r.sock]))
    while not r.server.started:
        await asyncio.sleep(0.01)
    yield r
    r.server.should_exit = True
    await task


def register_jwt(key: Ed25519KeyPair, aud: str, whu: str, typ: str, exp_in: int = DAY) -> str:
    now = int(time.time())
    return WatchRegisterClaims(
        iss=encode_did_key(key.public_key), aud=aud, sub="http://notify.test", typ=typ, whu=whu,
        tag=list(NOTIFY_SERVER_WATCHED_TAGS), sts=["accepted", "queued"], iat=now, exp=now + exp_in,
    ).sign(key)


async def test_watch_events_are_signed_retried_and_delivered(receiver: Receiver) -> None:
    async with RelayServer(RelayConfig(port=0, watch_retry_base=0.05)) as relay:
        watched = Ed25519KeyPair.generate()
        relay_did = encode_did_key(relay.relay.key.public_key)
        topic = random_topic()
        async with RelayHttpClient(relay.http_url, watched) as server:
            answer = await server.request("irn_watchRegister", {
                "registerAuth": register_jwt(watched, relay.http_url, receiver.url + "/sub", "subscriber")})
            assert answer == {"relayId": relay_did}
            await server.request("irn_watchRegister", {
                "registerAuth": register_jwt(watched, relay.http_url, receiver.url + "/pub", "publisher")})
            await server.request("irn_batchSubscribe", {"topics": [topic]})
            async with await RawRelayPeer.open(relay.ws_url) as wallet:
                await wallet.call("irn_publish", {"topic": topic, "message": "ignored tag", "ttl": 300, "tag": 1})
                await wallet.call("irn_publish", {"topic": topic, "message": "subscribe", "ttl": 300, "tag": 4000})
            await server.publish(topic, "answer", ttl=300, tag=4000)  # the watched client publishes
            (queued,) = await receiver.wait_events("sub", 1)
            (accepted,) = await receiver.wait_events("pub", 1)
            assert receiver.attempts["sub"] == 4  # three 503s, then delivered
            now = int(time.time())
            q = WatchEventClaims.verify(queued, now=now)
            a = WatchEventClaims.verify(accepted, now=now)
            assert q.iss == a.iss == relay_did
            assert q.typ == "subscriber" and q.whu == receiver.url + "/sub"
            assert q.evt["status"] == "queued" and q.evt["message"] == "subscribe" and q.evt["tag"] == 4000
            assert q.evt["topic"] == topic and q.sub == encode_did_key(watched.public_key)
            assert a.evt["status"] == "accepted" and a.evt["message"] == "answer" and a.typ == "publisher"
            await asyncio.sleep(0.2)
            assert len(receiver.events["sub"]) == 1  # the tag-1 message made no event
            # unregister: no more events
            now = int(time.time())
            unregister = WatchUnregisterClaims(
                iss=encode_did_key(watched.public_key), aud=relay.http_url, sub="http://notify.test",
                typ="subscriber", whu=receiver.url + "/sub", iat=now, exp=now + 300,
            ).sign(watched)
            assert await server.request("irn_watchUnregister", {"unregisterAuth": unregister}) is True
            async with await RawRelayPeer.open(relay.ws_url) as wallet:
                await wallet.call("irn_publish", {"topic": topic, "message": "late", "ttl": 300, "tag": 4000})
            await asyncio.sleep(0.3)
            assert len(receiver.events["sub"]) == 1


async def test_watch_register_limits() -> None:
    async with RelayServer(RelayConfig(port=0)) as relay:
        key = Ed25519KeyPair.generate()
        async with RelayHttpClient(relay.http_url, key) as client:
            async def refused(token: Any) -> RelayRequestError:
                with pytest.raises(RelayRequestError) as info:
                    await client.request("irn_watchRegister", {"registerAuth": token})
                return info.value

            too_long = register_jwt(key, relay.http_url, "http://127.0.0.1:9/x", "subscriber", THIRTY_DAYS + 3600)
            assert (await refused(too_long)).tag == "InvalidWatch"
            assert (await refused(register_jwt(key, "wss://elsewhere", "http://127.0.0.1:9/x", "subscriber"))).tag \
                == "InvalidWatch"
            assert (await refused(register_jwt(key, relay.http_url, "ftp://x/y", "subscriber"))).tag == "InvalidWatch"
            assert (await refused(register_jwt(key, relay.http_url, "http://x/y", "nobody"))).tag == "InvalidWatch"
            assert (await refused(42)).code == -32602
            for i in range(64):
                await client.request("irn_watchRegister", {
                    "registerAuth": register_jwt(key, relay.http_url, f"http://127.0.0.1:9/{i}", "subscriber")})
            # registering the same one again replaces it; a 65th is refused
            await client.request("irn_watchRegister", {
                "registerAuth": register_jwt(key, relay.http_url, "http://127.0.0.1:9/0", "subscriber")})
            over = await refused(register_jwt(key, relay.http_url, "http://127.0.0.1:9/64", "subscriber"))
            assert over.tag == "WatchLimitExceeded" and over.code == -32000


async def test_4xx_counts_as_delivered() -> None:
    r = Receiver(status=410)
    task = asyncio.create_task(r.server.serve(sockets=[r.sock]))
    while not r.server.started:
        await asyncio.sleep(0.01)
    try:
        async with RelayServer(RelayConfig(port=0, watch_retry_base=0.05)) as relay:
            key = Ed25519KeyPair.generate()
            async with RelayHttpClient(relay.http_url, key) as client:
                await client.request("irn_watchRegister", {
                    "registerAuth": register_jwt(key, relay.http_url, r.url + "/gone", "publisher")})
                await client.publish(random_topic(), "m", ttl=300, tag=4010)
                await r.wait_events("gone", 1)
                await asyncio.sleep(0.3)
                assert r.attempts["gone"] == 1
    finally:
        r.server.should_exit = True
        await task
