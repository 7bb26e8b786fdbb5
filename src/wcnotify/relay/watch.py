"""Watch webhooks (``irn_watchRegister``/``irn_watchUnregister``, protocol.md §2, relay-webhooks.md).

A service (the notify server) registers, with a JWT signed by the *watched* client key, a webhook URL
``whu`` plus the tags and statuses it wants. For each stored message with a watched tag the relay POSTs
``{"eventAuth": [jwt]}`` to ``whu``, the JWT signed by the relay's own key (``act: irn_watchEvent``):

* ``typ: publisher`` and status ``accepted``: the watched client published the message;
* ``typ: subscriber`` and status ``queued``: the message was queued for the watched client (it is
  subscribed to the topic, over a WebSocket or with a persistent ``POST /rpc`` subscription).

Delivery: a 2xx or a 4xx ends an event (a 4xx will not get better by retrying); a 5xx, a timeout or a
connection error is retried with exponential backoff until the message's TTL ends, at most
``RELAY_WATCH_RETRY_MAX`` after the event was made.

Registrations, standing ``POST /rpc`` subscriptions and undelivered events live in a
:class:`~wcnotify.relay.watch_store.WatchStore` beside the mailbox, so they survive a restart and every node
sharing the store sees them. Exactly one POST per event: the node that stored a message makes the events of
its publisher, of standing subscribers and of its own live subscribers; every other node that routes it makes
the events of its own live subscribers; events are keyed by what happened (``event_id``), so the store keeps
one copy of an event several nodes made, and a claim lease keeps two nodes from sending the same one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson

from wcnotify import spec
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.did import encode_did_key
from wcnotify.protocol.jwt import JwtError, WatchEventClaims, WatchRegisterClaims, WatchUnregisterClaims
from wcnotify.relay.core import RelayRpcError, RelaySession, RelayState, register_handler
from wcnotify.relay.mailbox import StoredMessage
from wcnotify.relay.watch_store import MemoryWatchStore, Watch, WatchEvent, WatchStore, event_id
from wcnotify.spec import RelayError, RelayErrorTag, RelayMethod, WatchStatus, WatchType

__all__ = ["Watch", "WatchService"]

log = logging.getLogger("wcnotify.relay.watch")

_UINT32_MAX = 2**32 - 1


class WatchService:
    """Registrations, event signing and the webhook delivery worker of one relay node.

    Registrations and standing subscriptions are cached in memory (the publish path reads them for every
    stored message) and persisted in ``store``; with several nodes, ``announce`` tells the others about each
    change and :meth:`on_notice` applies theirs."""

    def __init__(
        self,
        key: Ed25519KeyPair,
        audiences: frozenset[str],
        clock: Callable[[], float],
        store: WatchStore | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        retry_base: float = 1.0,
        retry_max: float = 300.0,
        poll_interval: float = spec.RELAY_WATCH_POLL_INTERVAL,
    ) -> None:
        self.key = key
        self.relay_id = encode_did_key(key.public_key)
        self.audiences = audiences
        self.clock = clock
        self.store: WatchStore = store or MemoryWatchStore()
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.poll_interval = poll_interval
        # set by the server when there is a backplane: sends a change notice to every other node
        self.announce: Callable[[bytes], Awaitable[None]] | None = None
        self._http = http or httpx.AsyncClient(timeout=spec.RELAY_WATCH_HTTP_TIMEOUT, trust_env=False)
        self._watches: dict[str, dict[tuple[WatchType, str], Watch]] = {}  # client -> (typ, whu) -> watch
        self._state: RelayState | None = None
        self._replay: list[bytes] | None = None  # changes seen while a reload is reading the store
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.dropped = 0

    @property
    def _subs(self) -> dict[str, set[str]]:
        if self._state is None:
            raise RuntimeError("WatchService.start() was not called")
        return self._state.http_subscriptions

    # -- registrations

    async def register(self, token: Any, now: float) -> dict[str, str]:
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
        mine = {(w.typ, w.whu) for w in await self.store.watches_of(claims.iss, now)}  # every node's, not the cache
        if (typ, whu) not in mine and len(mine) >= spec.RELAY_WATCH_MAX_PER_CLIENT:
            raise RelayRpcError.tagged(
                RelayErrorTag.WATCH_LIMIT_EXCEEDED,
                f"{claims.iss} already has {spec.RELAY_WATCH_MAX_PER_CLIENT} watches; unregister one first",
            )
        watch = Watch(claims.iss, typ, whu, claims.sub, frozenset(claims.tag), statuses, claims.exp)
        await self.store.put_watch(watch)
        await self._change(orjson.dumps(["w+", watch.to_json().decode()]))
        return {"relayId": self.relay_id}

    async def unregister(self, token: Any, now: float) -> bool:
        if not isinstance(token, str):
            raise RelayRpcError(RelayError.INVALID_PARAMS, "params.unregisterAuth must be a JWT string")
        try:
            claims = WatchUnregisterClaims.verify(token, now=int(now), aud=self.audiences)
        except JwtError as exc:
            raise RelayRpcError.tagged(RelayErrorTag.INVALID_WATCH, f"unregisterAuth: {exc}") from exc
        typ = _watch_type(claims.typ)
        await self.store.delete_watch(claims.iss, typ, claims.whu)
        await self._change(orjson.dumps(["w-", claims.iss, typ.value, claims.whu]))
        return True

    def watches_of(self, client: str) -> list[Watch]:
        return list(self._watches.get(client, {}).values())

    # -- standing POST /rpc subscriptions (RelayState.http_subscriptions is the cache)

    async def subscriptions_changed(self, client: str, topics: Sequence[str], added: bool, now: float) -> None:
        """Persist (and announce) that ``client`` subscribed to or unsubscribed from ``topics`` over HTTP."""
        if added:
            await self.store.add_subscriptions(client, topics, now + spec.RELAY_HTTP_SUBSCRIPTION_TTL)
        else:
            await self.store.remove_subscriptions(client, topics)
        await self._change(orjson.dumps(["s+" if added else "s-", client, list(topics)]))

    # -- keeping the caches in line with the store and the other nodes

    async def _change(self, notice: bytes) -> None:
        """Apply a change made here to the caches, then tell the other nodes."""
        self._apply(notice)
        if self.announce is not None:
            try:
                await self.announce(notice)
            except Exception as exc:  # stored already: the others pick it up on their next reload
                log.warning("could not announce a watch change: %s", exc)

    def on_notice(self, notice: bytes) -> None:
        """A change another node made (backplane callback)."""
        try:
            self._apply(notice)
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring a malformed watch notice (%d bytes)", len(notice))

    def _apply(self, notice: bytes) -> None:
        if self._replay is not None:
            self._replay.append(notice)
        kind, *rest = orjson.loads(notice)
        if kind == "w+":
            watch = Watch.from_json(rest[0])
            self._watches.setdefault(watch.client, {})[(watch.typ, watch.whu)] = watch
        elif kind == "w-":
            client, typ, whu = rest
            mine = self._watches.get(client)
            if mine is not None:
                mine.pop((WatchType(typ), whu), None)
                if not mine:
                    del self._watches[client]
        elif kind in ("s+", "s-"):
            client, topics = rest
            for topic in topics:
                if kind == "s+":
                    self._subs.setdefault(topic, set()).add(client)
                else:
                    clients = self._subs.get(topic)
                    if clients is not None:
                        clients.discard(client)
                        if not clients:
                            del self._subs[topic]

    async def reload(self, now: float) -> None:
        """Replace the caches with what the store holds (on start, after a backplane reconnect, periodically)."""
        self._replay = []
        try:
            found, subs = await self.store.load(now)
            replay = self._replay
        finally:
            self._replay = None
        self._watches = {}
        for watch in found:
            self._watches.setdefault(watch.client, {})[(watch.typ, watch.whu)] = watch
        cache = self._subs
        cache.clear()
        for topic, client in subs:
            cache.setdefault(topic, set()).add(client)
        for notice in replay:  # changes made while the store was being read
            self._apply(notice)

    async def maintain(self, now: float) -> None:
        """Purge the store and reload the caches: heals a change notice this node missed."""
        await self.store.purge(now)
        await self.reload(now)

    def resync(self) -> None:
        """The backplane reconnected (notices may have been lost): reload in the background."""
        self._spawn(self.reload(self.clock()))

    # -- events

    async def on_stored(self, messages: Sequence[StoredMessage], now: float) -> None:
        """Queue the events ``messages`` cause; called by the node that stored them, before it answers."""
        if not self._watches or self._state is None:
            return
        events: list[WatchEvent] = []
        for m in messages:
            for watch in self.watches_of(m.publisher):
                if watch.typ is WatchType.PUBLISHER:
                    self._event(events, watch, m, WatchStatus.ACCEPTED, now)
            self._subscriber_events(events, m, self._state.subscriber_ids(m.topic), now)
        await self._enqueue(events, now)

    def on_remote(self, message: StoredMessage) -> None:
        """Another node stored ``message`` and this node routed it: queue the events of this node's own live
        subscribers (the storing node cannot see them). The store drops the duplicates."""
        if not self._watches or self._state is None:
            return
        events: list[WatchEvent] = []
        now = self.clock()
        self._subscriber_events(events, message, self._state.router.client_ids(message.topic), now)
        if events:
            self._spawn(self._enqueue(events, now))

    def _subscriber_events(self, out: list[WatchEvent], m: StoredMessage, clients: set[str], now: float) -> None:
        for client in clients:
            if client == m.publisher:
                continue
            for watch in self.watches_of(client):
                if watch.typ is WatchType.SUBSCRIBER:
                    self._event(out, watch, m, WatchStatus.QUEUED, now)

    def _event(self, out: list[WatchEvent], watch: Watch, m: StoredMessage, status: WatchStatus, now: float) -> None:
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
        out.append(WatchEvent(now, event_id(watch, m.topic, m.message_id, status), watch.whu, claims.sign(self.key),
                              give_up))

    async def _enqueue(self, events: list[WatchEvent], now: float) -> None:
        if not events:
            return
        try:
            await self.store.enqueue(events, now)
        except Exception:  # the message is stored and answered for; losing its event beats failing the publish
            log.exception("could not queue %d watch event(s)", len(events))
            return
        self._wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- delivery

    async def start(self, state: RelayState) -> None:
        """Load what the store holds and start delivering (what a previous run left undelivered included)."""
        self._state = state
        await self.reload(self.clock())
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        for task in [self._worker, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._http.aclose()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self.clock()
            try:
                events, next_due = await self.store.claim(now, spec.RELAY_WATCH_CLAIM_BATCH,
                                                          spec.RELAY_WATCH_CLAIM_LEASE)
            except Exception as exc:  # the store is restarting: try again shortly
                log.warning("watch queue unavailable: %s: %s", type(exc).__name__, exc)
                events, next_due = [], None
            if events:
                await asyncio.gather(*(self._attempt(e) for e in events))
                continue
            delay = self.poll_interval
            if next_due is not None:
                delay = min(delay, max(next_due - self.clock(), 0.005))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _attempt(self, event: WatchEvent) -> None:
        event.attempts += 1
        try:
            response = await self._http.post(event.whu, json={"eventAuth": [event.jwt]})
            retry = response.status_code >= 500
        except httpx.HTTPError as exc:
            log.info("watch webhook %s failed: %s", event.whu, exc)
            retry = True
        try:
            if not retry:
                self.delivered += 1
                await self.store.finish(event, self.clock())
                return
            event.due = self.clock() + min(self.retry_base * 2 ** (event.attempts - 1), self.retry_max)
            if event.due >= event.give_up_at:
                self.dropped += 1
                log.warning("watch webhook %s gave up after %d attempts", event.whu, event.attempts)
                await self.store.finish(event, self.clock())
                return
            await self.store.retry(event)
        except Exception as exc:  # the lease runs out and the event is attempted again
            log.warning("could not record a watch delivery: %s: %s", type(exc).__name__, exc)


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
    return await service.register(params.get("registerAuth") if isinstance(params, dict) else None, now)


async def _h_watch_unregister(session: RelaySession, params: Any, now: float) -> Any:
    service = _service(session)
    return await service.unregister(params.get("unregisterAuth") if isinstance(params, dict) else None, now)


def _service(session: RelaySession) -> WatchService:
    service = session.state.watch
    if not isinstance(service, WatchService):
        raise RelayRpcError(RelayError.METHOD_NOT_FOUND, "this relay has no watch webhooks configured")
    return service


register_handler(RelayMethod.WATCH_REGISTER, _h_watch_register)
register_handler(RelayMethod.WATCH_UNREGISTER, _h_watch_unregister)
