"""Watch webhooks (``irn_watchRegister``/``irn_watchUnregister``, protocol.md §2, relay-webhooks.md).

A service (the notify server) registers, with a JWT signed by the *watched* client key, a webhook URL
``whu`` plus the tags and statuses it wants. For each stored message with a watched tag the relay POSTs
``{"eventAuth": [jwt]}`` to ``whu``, the JWT signed by the relay's own key (``act: irn_watchEvent``):

* ``typ: publisher`` and status ``accepted``: the watched client published the message;
* ``typ: subscriber`` and status ``queued``: the message was queued for the watched client (it is
  subscribed to the topic, over a WebSocket or with a persistent ``POST /rpc`` subscription).

Delivery: a 2xx or a 4xx ends an event (a 4xx will not get better by retrying); a 5xx, a timeout or a
connection error is retried with exponential backoff until the message's TTL ends, at most
``RELAY_WATCH_RETRY_MAX`` after the event was made. The queue is in memory in this version (a restart
loses undelivered events).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx

from wcnotify import spec
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.did import encode_did_key
from wcnotify.protocol.jwt import JwtError, WatchEventClaims, WatchRegisterClaims, WatchUnregisterClaims
from wcnotify.relay.core import RelayRpcError, RelaySession, register_handler
from wcnotify.relay.mailbox import StoredMessage
from wcnotify.spec import RelayError, RelayErrorTag, RelayMethod, WatchStatus, WatchType

log = logging.getLogger("wcnotify.relay.watch")

_UINT32_MAX = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Watch:
    """One registration: ``client`` (the watched did:key), ``typ`` and ``whu``."""

    client: str
    typ: WatchType
    whu: str
    service: str  # the registration's sub (the service URL), used as the event aud
    tags: frozenset[int]
    statuses: frozenset[WatchStatus]
    expires_at: int


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    whu: str = field(compare=False)
    jwt: str = field(compare=False)
    give_up_at: float = field(compare=False)
    attempts: int = field(default=0, compare=False)


class WatchService:
    """Registrations, event signing and the webhook delivery queue of one relay node."""

    def __init__(
        self,
        key: Ed25519KeyPair,
        audiences: frozenset[str],
        clock: Callable[[], float],
        *,
        http: httpx.AsyncClient | None = None,
        retry_base: float = 1.0,
        retry_max: float = 300.0,
    ) -> None:
        self.key = key
        self.relay_id = encode_did_key(key.public_key)
        self.audiences = audiences
        self.clock = clock
        self.retry_base = retry_base
        self.retry_max = retry_max
        self._http = http or httpx.AsyncClient(timeout=10, trust_env=False)
        self._watches: dict[str, dict[tuple[WatchType, str], Watch]] = {}  # client -> (typ, whu) -> watch
        self._queue: list[_Delivery] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self.delivered = 0
        self.dropped = 0

    # -- registrations

    def register(self, token: Any, now: float) -> dict[str, str]:
        if not isinstance(token, str):
            raise RelayRpcError(RelayError.INVALID_PARAMS, "params.registerAuth must be a JWT string")
        try:
            claims = WatchRegisterClaims.verify(token, now=int(now), aud=self.audiences)
        except JwtError as exc:
            raise RelayRpcError.tagged(RelayErrorTag.INVALID_WATCH, f"registerAuth: {exc}") from exc
        if claims.exp > now + spec.RELAY_WATCH_MAX_TTL + spec.JWT_LEEWAY:
            raise RelayRpcError.tagged(RelayErrorTag.INVALID_WATCH, "registerAuth exp is more than 30 days away")
        typ = _watch_type(claims.typ)
        whu = _webhook_url(claims.whu)
        if any(isinstance(t, bool) or not 0 <= t <= _UINT32_MAX for t in claims.tag):
            raise RelayRpcError.tagged(RelayErrorTag.INVALID_WATCH, "registerAuth tag must be a list of uint32")
        try:
            statuses = frozenset(WatchStatus(s) for s in claims.sts)
        except ValueError as exc:
            raise RelayRpcError.tagged(RelayErrorTag.INVALID_WATCH, f"registerAuth sts: {exc}") from exc
        mine = self._watches.setdefault(claims.iss, {})
        self._expire(claims.iss, now)
        if (typ, whu) not in mine and len(mine) >= spec.RELAY_WATCH_MAX_PER_CLIENT:
            raise RelayRpcError.tagged(
                RelayErrorTag.WATCH_LIMIT_EXCEEDED,
                f"{claims.iss} already has {spec.RELAY_WATCH_MAX_PER_CLIENT} watches; unregister one first",
            )
        mine[(typ, whu)] = Watch(claims.iss, typ, whu, claims.sub, frozenset(claims.tag), statuses, claims.exp)
        return {"relayId": self.relay_id}

    def unregister(self, token: Any, now: float) -> bool:
        if not isinstance(token, str):
            raise RelayRpcError(RelayError.INVALID_PARAMS, "params.unregisterAuth must be a JWT string")
        try:
            claims = WatchUnregisterClaims.verify(token, now=int(now), aud=self.audiences)
        except JwtError as exc:
            raise RelayRpcError.tagged(RelayErrorTag.INVALID_WATCH, f"unregisterAuth: {exc}") from exc
        self._watches.get(claims.iss, {}).pop((_watch_type(claims.typ), claims.whu), None)
        return True

    def _expire(self, client: str, now: float) -> None:
        mine = self._watches.get(client, {})
        for key in [k for k, w in mine.items() if w.expires_at <= now]:
            del mine[key]

    def watches_of(self, client: str) -> list[Watch]:
        return list(self._watches.get(client, {}).values())

    # -- events

    def on_stored(self, messages: Sequence[StoredMessage], subscribers: Callable[[str], set[str]], now: float) -> None:
        """Queue the events ``messages`` cause; ``subscribers(topic)`` names the client ids subscribed to it."""
        if not self._watches:
            return
        for m in messages:
            for watch in self.watches_of(m.publisher):
                if watch.typ is WatchType.PUBLISHER:
                    self._event(watch, m, WatchStatus.ACCEPTED, now)
            for client in subscribers(m.topic):
                if client == m.publisher:
                    continue
                for watch in self.watches_of(client):
                    if watch.typ is WatchType.SUBSCRIBER:
                        self._event(watch, m, WatchStatus.QUEUED, now)

    def _event(self, watch: Watch, m: StoredMessage, status: WatchStatus, now: float) -> None:
        if watch.expires_at <= now or status not in watch.statuses or m.tag not in watch.tags:
            return
        evt = {
            "messageId": m.message_id, "status": status.value, "topic": m.topic, "message": m.message,
            "attestation": None, "publishedAt": m.published_at, "tag": m.tag,
        }
        claims = WatchEventClaims(
            iss=self.relay_id, aud=watch.service, sub=watch.client, typ=watch.typ.value, whu=watch.whu, evt=evt,
            iat=int(now), exp=int(m.expires_at),
        )
        give_up = min(m.expires_at, now + spec.RELAY_WATCH_RETRY_MAX)
        heapq.heappush(self._queue, _Delivery(now, next(self._seq), watch.whu, claims.sign(self.key), give_up))
        self._wake.set()

    # -- delivery

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self._http.aclose()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._queue[0].due - self.clock()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            due: list[_Delivery] = []
            now = self.clock()
            while self._queue and self._queue[0].due <= now and len(due) < 64:
                due.append(heapq.heappop(self._queue))
            await asyncio.gather(*(self._attempt(d) for d in due))

    async def _attempt(self, delivery: _Delivery) -> None:
        delivery.attempts += 1
        try:
            response = await self._http.post(delivery.whu, json={"eventAuth": [delivery.jwt]})
            retry = response.status_code >= 500
        except httpx.HTTPError as exc:
            log.info("watch webhook %s failed: %s", delivery.whu, exc)
            retry = True
        if not retry:
            self.delivered += 1
            return
        delivery.due = self.clock() + min(self.retry_base * 2 ** (delivery.attempts - 1), self.retry_max)
        if delivery.due >= delivery.give_up_at:
            self.dropped += 1
            log.warning("watch webhook %s gave up after %d attempts", delivery.whu, delivery.attempts)
            return
        heapq.heappush(self._queue, delivery)


def _watch_type(value: str) -> WatchType:
    try:
        return WatchType(value)
    except ValueError:
        raise RelayRpcError.tagged(RelayErrorTag.INVALID_WATCH, "typ must be subscriber or publisher") from None


def _webhook_url(value: str) -> str:
    if len(value) > spec.RELAY_WATCH_URL_MAX:
        raise RelayRpcError.tagged(RelayErrorTag.INVALID_WATCH, f"whu is longer than {spec.RELAY_WATCH_URL_MAX}")
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise RelayRpcError.tagged(RelayErrorTag.INVALID_WATCH, "whu must be an http(s) URL")
    return value


async def _h_watch_register(session: RelaySession, params: Any, now: float) -> Any:
    service = _service(session)
    return service.register(params.get("registerAuth") if isinstance(params, dict) else None, now)


async def _h_watch_unregister(session: RelaySession, params: Any, now: float) -> Any:
    service = _service(session)
    return service.unregister(params.get("unregisterAuth") if isinstance(params, dict) else None, now)


def _service(session: RelaySession) -> WatchService:
    service = session.state.watch
    if not isinstance(service, WatchService):
        raise RelayRpcError(RelayError.METHOD_NOT_FOUND, "this relay has no watch webhooks configured")
    return service


register_handler(RelayMethod.WATCH_REGISTER, _h_watch_register)
register_handler(RelayMethod.WATCH_UNREGISTER, _h_watch_unregister)
