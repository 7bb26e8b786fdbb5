"""Wallet SDK devices against an in-process stack (see notify_stack.py).

The dapps the stack creates have made-up domains (``app-….example.com``) that no DNS resolves, so the
devices here resolve a dapp's did:web through the notify server's own ``GET /v1/{projectId}/did.json`` (a
real HTTP call to the real document); the resolver is the SDK's injection point for exactly this. The tests
that serve a did.json on a ``localhost:PORT`` domain use the SDK's default resolver instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from eth_account import Account as EthAccount

from wcnotify import spec
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.cacao import sign_eip191
from wcnotify.protocol.crypto import Ed25519KeyPair, b64url_encode, encode_type0
from wcnotify.protocol.did import Account, DidWebKeys, did_web, encode_did_key, parse_did_document
from wcnotify.protocol.jwt import NotifyMessageClaims
from wcnotify.protocol.sync import SyncDel, SyncSet, derive_store, record_request, store_topic
from wcnotify.wallet import EventStream, NotifyClient, Subscription
from wcnotify.wallet.resolver import DidResolutionError

from .notify_stack import Dapp, Stack


class StackResolver:
    """did:web of the stack's dapps, fetched over HTTP from the notify server that holds their keys."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.projects: dict[str, str] = {}  # domain -> project id
        self.fetched = 0
        self.cache: dict[str, DidWebKeys] = {}  # like any did:web resolver that honours caching headers

    def add(self, dapp: Dapp) -> Dapp:
        self.projects[dapp.domain] = dapp.project_id
        return dapp

    async def resolve(self, domain: str) -> DidWebKeys:
        if domain not in self.projects:
            raise DidResolutionError(f"no dapp at {domain}")
        if domain not in self.cache:
            r = await self.stack.http.get(f"{self.stack.notify_url}/v1/{self.projects[domain]}/did.json")
            self.fetched += 1
            self.cache[domain] = parse_did_document(r.json(), did_web(domain))
        return self.cache[domain]


def device_options(stack: Stack, resolver: StackResolver | None = None, **extra: Any) -> dict[str, Any]:
    return {"relay_url": stack.relay.ws_url, "keys_server_url": stack.keys.url,
            "notify_server_url": stack.notify_url, "resolver": resolver, **extra}


@contextlib.asynccontextmanager
async def device(stack: Stack, path: Path, resolver: StackResolver | None = None,
                 **extra: Any) -> AsyncIterator[NotifyClient]:
    async with NotifyClient(path, **device_options(stack, resolver, **extra)) as client:
        yield client


def new_account(chain: str = "eip155:1") -> tuple[Any, str]:
    eth = EthAccount.create()
    return eth, f"{chain}:{eth.address}"


E = TypeVar("E")


async def next_of(stream: EventStream, kind: type[E], timeout: float = 10) -> E:
    """The next event of ``kind`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        event = await stream.next(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(event, kind):
            return event


async def publish_notification(
    stack: Stack, sub: Subscription, key: Ed25519KeyPair, *, msg_id: str | None = None, title: str = "hello",
    account: str | None = None, app_domain: str | None = None, tamper: bool = False,
) -> str:
    """Publish a ``wc_notifyMessage`` on ``sub``'s topic as a third party would: signed by ``key``, about
    ``account`` and ``app_domain`` (the subscription's unless given). ``tamper``: the payload is altered after
    signing (the title changed), so the signature no longer verifies. Returns ``msg.id``."""
    now = int(time.time())
    msg_id = msg_id or str(uuid.uuid4())
    claims = NotifyMessageClaims(
        iat=now, exp=now + 60, iss=encode_did_key(key.public_key), sub=Account.parse(account or sub.account).did_pkh,
        app=did_web(app_domain or sub.app_domain),
        msg={"id": msg_id, "sent_at": now * 1000, "type": sub.scope[0], "title": title, "body": "b", "icon": "",
             "url": "", "is_read": False},
    )
    token = claims.sign(key)
    if tamper:
        header, _payload, signature = token.split(".")
        altered = claims.to_claims()
        altered["msg"] = {**altered["msg"], "title": title + " (altered)"}
        token = ".".join((header, b64url_encode(orjson.dumps(altered)), signature))
    request = jsonrpc.Request(jsonrpc.payload_id(now * 1000, 1), spec.NOTIFY_MESSAGE.method, {"messageAuth": token})
    await stack.relay_publish(sub.topic, encode_type0(sub.sym_key, jsonrpc.encode(request)),
                              tag=spec.NOTIFY_MESSAGE.request_tag)
    return msg_id


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    """Poll ``check`` until it holds (a device's state after Sync or watch); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def until_following(client: NotifyClient, account: str, topics: set[str], timeout: float = 10) -> None:
    """Wait until ``client``'s subscriptions of ``account`` are exactly ``topics``."""

    async def check() -> bool:
        return {s.topic for s in await client.subscriptions(account)} == topics

    await until(check, f"{client.path} follows {len(topics)} subscription(s)", timeout)


def sync_signature(eth_key: bytes, account: str) -> str:
    """The user's EIP-191 signature that enables Sync: every device holding it derives the same stores."""
    return sign_eip191(f"{spec.SYNC_MESSAGE_PREFIX}{account}{spec.SYNC_MESSAGE_SUFFIX}", eth_key)


async def publish_record(stack: Stack, signature: str, record: SyncSet | SyncDel) -> None:
    """Publish a Sync record on its store topic as a device of the account would (it holds the signature)."""
    key = derive_store(signature, record.store).key
    await stack.relay_publish(store_topic(key), encode_type0(key, jsonrpc.encode(record_request(record))),
                              tag=record.rpc.request_tag, ttl=record.rpc.request_ttl)
