"""A whole Notify stack in-process (relay, keys server, notify server) and a protocol-level test wallet.

The wallet here speaks the wire protocol step by step (the seeds' 17 subscribe steps, watch, update,
delete, history, read) so each test can also send what a well-behaved SDK never would: forged or
expired JWTs, wrong audiences, another account's requests. The real wallet SDK is ``wcnotify.wallet``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_account import Account as EthAccount
from sqlalchemy import Table, select

from wcnotify import spec
from wcnotify.keys.client import KeysClient
from wcnotify.keys.server import KeysConfig, KeysServer
from wcnotify.notify.server import NotifyConfig, NotifyServer
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.cacao import Cacao, prepare_registration, sign_eip191, siwe_message
from wcnotify.protocol.crypto import (
    Ed25519KeyPair,
    X25519KeyPair,
    decrypt,
    derive_sym_key,
    encode_type0,
    encode_type1,
    message_id,
    topic_of,
)
from wcnotify.protocol.did import Account, did_web, encode_did_key, parse_did_document
from wcnotify.protocol.jwt import WatchEventClaims, decode_jwt, encode_jwt, verify_jwt
from wcnotify.relay.client import RelayClient, RelayHttpClient, RelayMessage
from wcnotify.relay.server import RelayConfig, RelayServer
from wcnotify.storage import create_engine
from wcnotify.storage.tables import (
    broadcast_parts,
    notifications,
    projects,
    subscriber_notifications,
    subscriber_scopes,
    subscribers,
    watchers,
)

from .threaded import in_thread

ADMIN = "test-admin-token"
ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN}"}


def refused(response: httpx.Response, status: int, *words: str) -> None:
    """The API refused with ``status`` and an ``{"error"}`` message holding every one of ``words``."""
    assert response.status_code == status, (response.status_code, response.text)
    message = response.json()["error"]
    for word in words:
        assert word in message, message


@dataclass
class Dapp:
    project_id: str
    secret: str
    domain: str
    subscribe_key: bytes
    authentication_key: bytes
    types: dict[str, str] = field(default_factory=dict)  # name -> id

    @property
    def auth_did(self) -> str:
        return encode_did_key(self.authentication_key)

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.secret}"}


@dataclass
class Stack:
    relay: RelayServer
    keys: KeysServer
    notify: NotifyServer
    http: httpx.AsyncClient

    @property
    def notify_url(self) -> str:
        return self.notify.url

    async def create_dapp(self, domain: str | None = None, types: tuple[str, ...] = ("alerts", "news")) -> Dapp:
        domain = domain or f"app-{os.urandom(4).hex()}.example.com"
        r = await self.http.post(f"{self.notify_url}/v1/projects", json={"name": domain},
                                 headers={"authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 201, r.text
        project = r.json()
        headers = {"authorization": f"Bearer {project['secret']}"}
        r = await self.http.post(f"{self.notify_url}/{project['projectId']}/subscribe-topic",
                                 json={"appDomain": domain}, headers=headers)
        assert r.status_code == 200, r.text
        keys = r.json()
        dapp = Dapp(project["projectId"], project["secret"], domain, bytes.fromhex(keys["subscribeKey"]),
                    bytes.fromhex(keys["authenticationKey"]))
        for name in types:
            r = await self.http.post(f"{self.notify_url}/v1/{dapp.project_id}/notification-types",
                                     json={"name": name, "description": f"{name} of {domain}"}, headers=headers)
            assert r.status_code == 201, r.text
            dapp.types[name] = r.json()["id"]
        return dapp

    async def send(
        self, dapp: Dapp, accounts: list[str], type_name: str | None = None, *, notification_id: str | None = None,
        title: str = "hello", body: str = "a notification", **extra: Any,
    ) -> dict[str, Any]:
        """``POST /{projectId}/notify``; asserts 200 and returns ``{sent, failed, not_found}``."""
        notification = {"type": dapp.types[type_name or next(iter(dapp.types))], "title": title, "body": body, **extra}
        payload: dict[str, Any] = {"notification": notification, "accounts": accounts}
        if notification_id is not None:
            payload["notification_id"] = notification_id
        r = await self.http.post(f"{self.notify_url}/{dapp.project_id}/notify", json=payload, headers=dapp.headers)
        assert r.status_code == 200, r.text
        return r.json()

    async def status(self, dapp: Dapp, notification_id: str) -> dict[str, Any]:
        r = await self.http.get(f"{self.notify_url}/v1/{dapp.project_id}/notifications/{notification_id}",
                                headers=dapp.headers)
        assert r.status_code == 200, r.text
        return r.json()

    async def delivered(self, dapp: Dapp, notification_id: str, count: int, timeout: float = 10) -> dict[str, Any]:
        """Wait until ``count`` deliveries of the notification are published; its status."""
        deadline = time.monotonic() + timeout
        while True:
            status = await self.status(dapp, notification_id)
            if status["published"] >= count or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.05)

    def watch_event(self, evt: dict[str, Any], *, key: Ed25519KeyPair | None = None, aud: str | None = None,
                    now: int | None = None) -> dict[str, Any]:
        """A webhook body ``{"eventAuth": [jwt]}`` as the relay signs it (``key``/``aud`` to forge one)."""
        now = int(time.time()) if now is None else now
        link = self.notify.service.relay
        claims = WatchEventClaims(
            iat=now, exp=now + 300, iss=encode_did_key((key or self.relay.relay.key).public_key),
            aud=aud or link.public_url, sub=link.client_id, typ="subscriber", whu=link.webhook_url, evt=evt,
        )
        return {"eventAuth": [encode_jwt(claims.to_claims(), key or self.relay.relay.key)]}

    async def redeliver(self, topic: str, message: str, tag: int) -> httpx.Response:
        """POST a relay-signed ``accepted`` event for a message straight to the notify webhook: what a relay
        retrying a webhook does (the relay itself drops a re-published identical ciphertext)."""
        evt = {"messageId": message_id(message), "status": "accepted", "topic": topic, "message": message,
               "attestation": None, "publishedAt": int(time.time() * 1000), "tag": tag}
        return await self.http.post(self.notify_url + spec.NOTIFY_WEBHOOK_PATH, json=self.watch_event(evt))

    async def relay_publish(self, topic: str, message: str, *, tag: int, ttl: int = 300) -> None:
        """Publish on the relay as a third party (a forger, or a replay of something seen on a topic)."""
        async with RelayHttpClient(self.relay.http_url) as client:
            await client.publish(topic, message, ttl=ttl, tag=tag)

    async def project_key(self, dapp: Dapp) -> Ed25519KeyPair:
        """The dapp's authentication key as the notify server keeps it (to sign what only the server should)."""
        engine = create_engine(self.notify.config.database_url)
        try:
            async with engine.connect() as conn:
                row = (await conn.execute(select(projects.c.authentication_private)
                                          .where(projects.c.project_id == dapp.project_id))).one()
        finally:
            await engine.dispose()
        return Ed25519KeyPair.from_seed(bytes.fromhex(row[0]))

    async def server_keys(self) -> tuple[bytes, bytes]:
        """The notify server's own (key agreement, authentication) keys, from its did.json."""
        r = await self.http.get(f"{self.notify_url}{spec.DID_JSON_PATH}")
        keys = parse_did_document(r.json())
        return keys.key_agreement, keys.authentication


@contextlib.asynccontextmanager
async def running_stack(
    database_url: str, *, relay_config: RelayConfig | None = None, **notify_options: Any
) -> AsyncIterator[Stack]:
    """Relay and keys server (started together), then the notify server; all three stop together.

    A local stack: its notify server allows private URLs (webhook receivers and did.json on 127.0.0.1), as
    ``wcnotify up`` does, unless ``allow_private_urls=False`` is passed."""
    relay = RelayServer(relay_config or RelayConfig(port=0))
    keys = KeysServer(KeysConfig(port=0, database_url=database_url))
    started: list[RelayServer | KeysServer | NotifyServer] = []

    async def start(server: RelayServer | KeysServer | NotifyServer) -> None:
        await server.start()
        started.append(server)

    try:
        await _together(start(relay), start(keys))
        config = NotifyConfig(
            relay_url=relay.http_url, keys_urls=(keys.url,), port=0, database_url=database_url,
            admin_token=ADMIN, seed="test seed " + os.urandom(4).hex(),
            **{"allow_private_urls": True, **notify_options},
        )
        notify = NotifyServer(config)
        await start(notify)
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            await notify.wait_relay()
            yield Stack(relay, keys, notify, http)
    finally:
        # uvicorn takes ~0.2 s to wind down each server: stop them in parallel
        await _together(*(server.stop() for server in started))


async def _together(*calls: Awaitable[None]) -> None:
    """Run ``calls`` concurrently; wait for all of them, then raise the first failure."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class RpcRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Wallet:
    """One device of one account: an identity key, a relay connection, and the protocol by hand."""

    def __init__(self, stack: Stack, *, eth: Any = None, chain: str = "eip155:1") -> None:
        self.stack = stack
        self.eth = eth or EthAccount.create()
        self.account = Account.parse(f"{chain}:{self.eth.address}")
        self.identity = Ed25519KeyPair.generate()
        self.relay = RelayClient(stack.relay.ws_url)
        self.ksu = stack.keys.url
        self._buffer: list[RelayMessage] = []
        self.subscriptions: dict[str, dict[str, Any]] = {}  # app domain -> sbs entry
        self.watch_key: bytes | None = None  # S_w, to read subscriptionsChanged
        self.last_published: tuple[str, str, int] | None = None  # (topic, message, tag) of the last request

    @property
    def did(self) -> str:
        return encode_did_key(self.identity.public_key)

    async def __aenter__(self) -> Wallet:
        await self.relay.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.relay.close()

    async def register(self, domain: str, *, all_apps: bool = False, recaps: bool = False) -> None:
        payload = prepare_registration(
            account=self.account, domain=domain, identity_public_key=self.identity.public_key,
            keys_server_url=self.ksu, all_apps=all_apps, nonce=os.urandom(16).hex(), now=time.time(),
            recaps=recaps,
        )
        cacao = Cacao(payload, sign_eip191(siwe_message(payload), self.eth.key))
        async with KeysClient(self.ksu, http=self.stack.http) as keys:  # shared client: no TLS set-up per call
            await keys.register(cacao)

    # ------------------------------------------------------------------------------- plumbing

    async def wait(self, topic: str, tag: int | None = None, timeout: float = 10) -> RelayMessage:
        deadline = time.monotonic() + timeout
        while True:
            for m in self._buffer:
                if m.topic == topic and (tag is None or m.tag == tag):
                    self._buffer.remove(m)
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"nothing on {topic[:12]} with tag {tag}")
            try:
                self._buffer.append(await self.relay.next_message(timeout=left))
            except TimeoutError:
                continue

    async def nothing(self, topic: str, wait: float = 0.5) -> bool:
        try:
            await self.wait(topic, timeout=wait)
        except TimeoutError:
            return True
        return False

    def claims(self, *, act: str, aud: str, app: str | None, now: int | None = None, ttl: int = 300,
               **extra: Any) -> dict[str, Any]:
        now = int(time.time()) if now is None else now
        claims: dict[str, Any] = {"iat": now, "exp": now + ttl, "iss": self.did, "act": act, "aud": aud,
                                  "ksu": self.ksu, "sub": self.account.did_pkh, "mjv": "1",
                                  # unique per request, as the wallet SDK's: the server refuses a state-changing
                                  # JWT it has applied before, and equal claims within one second would repeat one
                                  "jti": secrets.token_hex(8)}
        if app is not None or act == spec.Act.NOTIFY_WATCH_SUBSCRIPTIONS:
            claims["app"] = app
        claims.update(extra)
        return claims

    async def call(
        self, rpc: spec.RpcSpec, claims: dict[str, Any], *, topic: str, key: bytes | None = None,
        receiver: bytes | None = None, reply_topic: str | None = None, signer: Ed25519KeyPair | None = None,
    ) -> dict[str, Any]:
        """Publish one request (type 1 to ``receiver`` or type 0 under ``key``) and return the answer's claims."""
        request, message, key, reply_topic = await self.prepare(rpc, claims, key=key, receiver=receiver,
                                                                reply_topic=reply_topic or topic, signer=signer)
        self.last_published = (topic, message, rpc.request_tag)  # to replay it (Stack.redeliver)
        await self.relay.publish(topic, message, ttl=rpc.request_ttl, tag=rpc.request_tag)
        return await self.answer(rpc, request, key, reply_topic)

    async def prepare(
        self, rpc: spec.RpcSpec, claims: dict[str, Any], *, key: bytes | None = None, receiver: bytes | None = None,
        reply_topic: str | None = None, signer: Ed25519KeyPair | None = None,
    ) -> tuple[jsonrpc.Request, str, bytes, str]:
        """The request, its envelope, its answer key and answer topic (subscribed), without publishing it."""
        token = encode_jwt(claims, signer or self.identity)
        request = jsonrpc.Request(jsonrpc.payload_id(int(time.time() * 1000), secrets.randbelow(1000)), rpc.method,
                                  {rpc.params_key: token})
        if receiver is not None:
            y = X25519KeyPair.generate()
            key = derive_sym_key(y.private_key, receiver)
            message = encode_type1(key, y.public_key, jsonrpc.encode(request))
            reply_topic = topic_of(key)
        else:
            assert key is not None and reply_topic is not None
            message = encode_type0(key, jsonrpc.encode(request))
        if reply_topic not in self.relay.topics:
            await self.relay.subscribe(reply_topic)
        self.last_sender = y if receiver is not None else None
        return request, message, key, reply_topic

    async def answer(self, rpc: spec.RpcSpec, request: jsonrpc.Request, key: bytes, reply_topic: str) -> dict[str, Any]:
        """The claims of the answer to ``request`` (raises RpcRefused with the server's message on an error)."""
        while True:  # others may answer on a shared topic (and the relay replays a topic's backlog): match the id
            answer = await self.wait(reply_topic, rpc.response_tag)
            response = jsonrpc.parse_message(decrypt(answer.message, key))
            if isinstance(response, jsonrpc.Result | jsonrpc.Error) and response.id == request.id:
                break
        if isinstance(response, jsonrpc.Error):
            raise RpcRefused(response.message)
        assert isinstance(response, jsonrpc.Result)
        self.last_answer_key = key
        return decode_jwt(response.result[rpc.result_key]).claims

    # ------------------------------------------------------------------------------ protocol

    async def subscribe(self, dapp: Dapp, types: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
        scope = " ".join(dapp.types[t] for t in (types if types is not None else list(dapp.types)))
        claims = self.claims(act=spec.Act.NOTIFY_SUBSCRIPTION, aud=dapp.auth_did, app=did_web(dapp.domain),
                             scp=scope)
        claims.update(overrides)
        answer = await self.call(spec.NOTIFY_SUBSCRIBE, claims, topic=topic_of(dapp.subscribe_key),
                                 receiver=dapp.subscribe_key)
        for entry in answer["sbs"]:
            self.subscriptions[entry["appDomain"]] = entry
            topic = topic_of(bytes.fromhex(entry["symKey"]))
            if topic not in self.relay.topics:
                await self.relay.subscribe(topic)
        return answer

    def sub_key(self, dapp: Dapp) -> bytes:
        return bytes.fromhex(self.subscriptions[dapp.domain]["symKey"])

    async def on_subscription(self, dapp: Dapp, rpc: spec.RpcSpec, act: str, **extra: Any) -> dict[str, Any]:
        key = self.sub_key(dapp)
        claims = self.claims(act=act, aud=dapp.auth_did, app=did_web(dapp.domain), **extra)
        return await self.call(rpc, claims, topic=topic_of(key), key=key)

    async def next_notification(self, dapp: Dapp, timeout: float = 10) -> dict[str, Any]:
        """The next ``wc_notifyMessage`` on the dapp's subscription: its ``messageAuth`` claims, verified
        against the dapp's authentication key (a forged one fails here)."""
        key = self.sub_key(dapp)
        m = await self.wait(topic_of(key), spec.NOTIFY_MESSAGE.request_tag, timeout)
        request = jsonrpc.parse_message(decrypt(m.message, key))
        assert isinstance(request, jsonrpc.Request) and request.method == spec.NOTIFY_MESSAGE.method, request
        return verify_jwt(request.params["messageAuth"], now=int(time.time()))

    async def update(self, dapp: Dapp, types: list[str]) -> dict[str, Any]:
        return await self.on_subscription(dapp, spec.NOTIFY_UPDATE, spec.Act.NOTIFY_UPDATE,
                                          scp=" ".join(dapp.types[t] for t in types))

    async def delete(self, dapp: Dapp) -> dict[str, Any]:
        return await self.on_subscription(dapp, spec.NOTIFY_DELETE, spec.Act.NOTIFY_DELETE)

    async def history(self, dapp: Dapp, lmt: int = 50, aft: str | None = None, urf: bool = False) -> dict[str, Any]:
        return await self.on_subscription(dapp, spec.NOTIFY_GET_NOTIFICATIONS, spec.Act.NOTIFY_GET_NOTIFICATIONS,
                                          lmt=lmt, aft=aft, urf=urf)

    async def mark_read(self, dapp: Dapp, ids: list[str] | None = None) -> dict[str, Any]:
        extra: dict[str, Any] = {"all": True} if ids is None else {"all": False, "ids": ids}
        return await self.on_subscription(dapp, spec.NOTIFY_MARK_NOTIFICATIONS_AS_READ,
                                          spec.Act.NOTIFY_MARK_NOTIFICATIONS_AS_READ, **extra)

    async def watch(self, app: str | None = None, *, mjv: str = "1", **overrides: Any) -> dict[str, Any]:
        agreement, authentication = await self.stack.server_keys()
        claims = self.claims(act=spec.Act.NOTIFY_WATCH_SUBSCRIPTIONS, aud=encode_did_key(authentication),
                             app=did_web(app) if app else None, mjv=mjv)
        claims.update(overrides)
        answer = await self.call(spec.NOTIFY_WATCH_SUBSCRIPTIONS, claims, topic=topic_of(agreement),
                                 receiver=agreement)
        self.watch_key = self.last_answer_key
        return answer

    async def next_change(self, timeout: float = 10) -> dict[str, Any]:
        """The next ``wc_notifySubscriptionsChanged`` on the watch topic, as claims."""
        assert self.watch_key is not None
        m = await self.wait(topic_of(self.watch_key), spec.NOTIFY_SUBSCRIPTIONS_CHANGED.request_tag, timeout)
        request = jsonrpc.parse_message(decrypt(m.message, self.watch_key))
        assert isinstance(request, jsonrpc.Request)
        return decode_jwt(request.params["subscriptionsChangedAuth"]).claims


def random_type_id() -> str:
    return str(uuid.uuid4())


# ------------------------------------------------------------------------------------ the database


NOTIFY_STATE_TABLES = (subscribers, subscriber_scopes, watchers, subscriber_notifications, broadcast_parts)


async def db_snapshot(database_url: str, tables: tuple[Table, ...] = NOTIFY_STATE_TABLES) -> dict[str, list[tuple]]:
    """Every row of ``tables`` (sorted), to compare before and after a request that must change nothing."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            out = {}
            for table in tables:
                rows = (await conn.execute(select(table))).all()
                out[table.name] = sorted((tuple(r) for r in rows), key=repr)
            return out
    finally:
        await engine.dispose()


async def seed_inbox(
    database_url: str, dapp: Dapp, sym_key: str, count: int, *, created_at: int | list[int] | None = None,
    type_id: str | None = None,
) -> list[str]:
    """Insert ``count`` notifications into one subscriber's inbox (as delivery will); their inbox ids, newest first.

    ``created_at``: one millisecond timestamp for all (equal timestamps), a list (one each), or None for
    one second apart, the last the newest.
    """
    if created_at is None:
        base = int(time.time() * 1000) - count * 1000
        stamps = [base + i * 1000 for i in range(count)]
    elif isinstance(created_at, int):
        stamps = [created_at] * count
    else:
        stamps = list(created_at)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            project = (await conn.execute(select(projects.c.id).where(projects.c.project_id == dapp.project_id))).one()
            subscriber = (await conn.execute(select(subscribers.c.id).where(subscribers.c.topic == topic_of(
                bytes.fromhex(sym_key))))).one()
            ids = []
            for i, stamp in enumerate(stamps):
                nid, sid = str(uuid.uuid4()), str(uuid.uuid4())
                await conn.execute(notifications.insert().values(
                    id=nid, project=project.id, notification_id=nid, type=type_id or next(iter(dapp.types.values())),
                    title=f"title {i}", body=f"body {i}", icon=None, url=None, created_at=stamp,
                ))
                await conn.execute(subscriber_notifications.insert().values(
                    id=sid, notification=nid, subscriber=subscriber.id, status="published", is_read=False,
                    created_at=stamp, updated_at=stamp,
                ))
                ids.append((stamp, sid))
    finally:
        await engine.dispose()
    return [sid for _, sid in sorted(ids, reverse=True)]


async def unread_ids(database_url: str, sym_key: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            sn = subscriber_notifications
            rows = await conn.execute(
                select(sn.c.id).join(subscribers, subscribers.c.id == sn.c.subscriber)
                .where(subscribers.c.topic == topic_of(bytes.fromhex(sym_key)), sn.c.is_read.is_(False))
            )
            return {r.id for r in rows}
    finally:
        await engine.dispose()


# ----------------------------------------------------------------------------- for Hypothesis tests


def stack_in_thread(database_url: str) -> AbstractContextManager[tuple[Stack, asyncio.AbstractEventLoop]]:
    """A stack on its own event loop in a thread, so a synchronous Hypothesis test can call it over HTTP."""
    return in_thread(running_stack(database_url))
