"""The relay protocol engine: one client's JSON-RPC frames in, response and ``irn_subscription`` frames out.

No sockets and no clock here: a :class:`RelaySession` is fed frames with ``receive(frame, now)`` and hands
every outgoing frame to the ``emit`` callback it was built with, in the order they must be sent. The ASGI
adapter (``server.py``) wires ``emit`` to a WebSocket outbox or, for ``POST /rpc``, to the HTTP body.

Rules (protocol.md §2, interop.md):

* Requests are handled one at a time per connection, in arrival order; this is what makes per-topic order
  equal publish order for one publisher, and "stored before answered" hold.
* A request id is echoed with its JSON type. The relay's own ids (``irn_subscription``) come from
  :class:`RelayIdGenerator`: unique per process, increasing, and at most 2**53 so JS echoes them intact.
* ``iridium_*`` and ``waku_*`` are aliases of ``irn_*``.
* The subscription id is ``hex(sha256(utf8(topic + client_id)))``, which is what the JS client computes;
  unsubscribe matches on topic and client and ignores the id.
* On subscribe the answer is sent first, then every pending message of the topic (mailbox order), then any
  message published meanwhile that was not in that backlog. Live messages are held back while the backlog
  is read, so a subscriber never sees a topic out of order.
* A backlog is read in pages of ``limits.backlog_page`` messages (one read for all topics of a batch
  subscribe). When a page is full the topics are *draining*: live messages for them are dropped (they are
  in the mailbox, after the page's cursor), and the next page is read, from the cursor, once the client
  has acknowledged half of what is in flight. The page that comes back short ends the drain the same way a
  one-page backlog does. A client that never acknowledges gets one page per subscribe.
* The client's ``{"id": n, "result": true}`` to an ``irn_subscription`` stores an ack for its client id; so
  does ``irn_batchReceive``, and so does ``irn_fetchMessages`` (the answer *is* the delivery; without that a
  client repeating fetch while ``hasMore`` would loop on the same page).
* Error codes: shape errors (wrong JSON-RPC, wrong param types) are -32600/-32601/-32602; a limit the
  protocol names is reported with the code in :data:`ERROR_CODES` and its ``RelayErrorTag`` in ``data``;
  a rate-limited frame gets 3001 (answers to the relay's pushes are never limited); a failure of the
  storage (a database or Redis that is restarting) is -32603 and the client retries. Nothing a client
  sends ends its connection.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wcnotify import spec
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.crypto import message_id
from wcnotify.relay.limits import RelayLimits, TokenBucket
from wcnotify.relay.mailbox import Mailbox, MailboxFullError, StoredMessage
from wcnotify.relay.router import Router, subscription_data
from wcnotify.spec import RelayError, RelayErrorTag, RelayMethod

Emit = Callable[[bytes], None]

log = logging.getLogger("wcnotify.relay")

_TOPIC = re.compile(f"[0-9a-f]{{{spec.RELAY_TOPIC_HEX_LENGTH}}}")
_UINT32_MAX = 2**32 - 1

# the JSON-RPC code each handler error tag is answered with
ERROR_CODES: dict[RelayErrorTag, int] = {
    RelayErrorTag.INVALID_TOPIC: RelayError.INVALID_PARAMS,
    RelayErrorTag.MESSAGE_TOO_LARGE: RelayError.INVALID_PARAMS,
    RelayErrorTag.BATCH_EMPTY: RelayError.INVALID_PARAMS,
    RelayErrorTag.BATCH_LIMIT_EXCEEDED: RelayError.INVALID_PARAMS,
    RelayErrorTag.TTL_TOO_SHORT: RelayError.HANDLER,
    RelayErrorTag.TTL_TOO_LONG: RelayError.HANDLER,
    RelayErrorTag.MAILBOX_LIMIT_EXCEEDED: RelayError.HANDLER,
    RelayErrorTag.WATCH_LIMIT_EXCEEDED: RelayError.HANDLER,
    RelayErrorTag.INVALID_WATCH: RelayError.HANDLER,
    RelayErrorTag.TOO_MANY_REQUESTS: RelayError.TOO_MANY_REQUESTS,
}


class RelayRpcError(Exception):
    """A request the relay refuses; becomes a JSON-RPC error answer (the connection carries on)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message
        self.data = data

    @classmethod
    def tagged(cls, tag: RelayErrorTag, message: str) -> RelayRpcError:
        return cls(ERROR_CODES[tag], message, tag.value)

    def to_error(self, request_id: jsonrpc.JsonRpcId | None) -> jsonrpc.Error:
        return jsonrpc.Error(request_id, self.code, self.message, self.data)


def _too_many() -> RelayRpcError:
    return RelayRpcError.tagged(RelayErrorTag.TOO_MANY_REQUESTS, "too many requests; slow down and retry")


def subscription_id(topic: str, client_id: str) -> str:
    """``hex(sha256(utf8(topic + client_id)))``: the id the JS client computes for its own subscriptions."""
    return hashlib.sha256((topic + client_id).encode()).hexdigest()


def canonical_method(method: str) -> RelayMethod | None:
    """``irn_*`` (or an ``iridium_*``/``waku_*`` alias) as a RelayMethod; None if unknown."""
    for prefix in spec.RELAY_METHOD_ALIAS_PREFIXES:
        if method.startswith(prefix):
            method = "irn_" + method[len(prefix) :]
            break
    try:
        return RelayMethod(method)
    except ValueError:
        return None


class RelayIdGenerator:
    """Ids for the relay's own requests: ``(now_ms << 8)`` layout, strictly increasing, at most 2**53."""

    def __init__(self) -> None:
        self._last = 0

    def next(self, now: float) -> int:
        self._last = max(self._last + 1, jsonrpc.relay_id(int(now * 1000), 0))
        return self._last


PublishHook = Callable[[Sequence[StoredMessage], float], Awaitable[None]]
SubscribeHook = Callable[[Sequence[str]], Awaitable[None]]


@dataclass
class RelayState:
    """What every session of one relay node shares."""

    mailbox: Mailbox
    router: Router = field(default_factory=Router)
    limits: RelayLimits = field(default_factory=RelayLimits)
    ids: RelayIdGenerator = field(default_factory=RelayIdGenerator)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    # called with every newly stored batch after it is stored (backplanes)
    on_publish: list[PublishHook] = field(default_factory=list)
    # awaited after topics got their first local subscriber, before their backlog is read (a backplane
    # waits there until it listens for them, so nothing published meanwhile on another node is missed)
    on_subscribe: list[SubscribeHook] = field(default_factory=list)
    # the watch webhook service (wcnotify.relay.watch.WatchService) when the node has one
    watch: Any = None
    # topic -> client ids subscribed over POST /rpc (no socket: they fetch, or are told by watch webhooks);
    # the watch service persists them and keeps this cache in line with the other nodes
    http_subscriptions: dict[str, set[str]] = field(default_factory=dict)

    def subscriber_ids(self, topic: str) -> set[str]:
        """Every client id subscribed to ``topic``, live or over HTTP."""
        return self.router.client_ids(topic) | self.http_subscriptions.get(topic, set())

    def allow(self, client_id: str, now: float) -> bool:
        """Take one token from ``client_id``'s bucket (shared by all its connections)."""
        bucket = self.buckets.get(client_id)
        if bucket is None:
            bucket = self.buckets[client_id] = TokenBucket(self.limits.rate_per_second, self.limits.rate_burst, now)
        return bucket.take(now)

    def prune_buckets(self, now: float) -> None:
        """Forget full buckets: a client that is idle long enough costs no memory."""
        for client_id in [c for c, b in self.buckets.items() if b.is_full(now)]:
            del self.buckets[client_id]


# ------------------------------------------------------------------------------------- validation


def _params(params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise RelayRpcError(RelayError.INVALID_PARAMS, "params must be an object")
    return params


def _string(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str):
        raise RelayRpcError(RelayError.INVALID_PARAMS, f"params.{name} must be a string")
    return value


def _topic(value: Any) -> str:
    if not isinstance(value, str):
        raise RelayRpcError(RelayError.INVALID_PARAMS, "topic must be a string")
    if not _TOPIC.fullmatch(value):
        raise RelayRpcError.tagged(
            RelayErrorTag.INVALID_TOPIC, f"topic must be {spec.RELAY_TOPIC_HEX_LENGTH} lowercase hex characters"
        )
    return value


def _uint32(params: dict[str, Any], name: str, default: int | None) -> int:
    if name not in params or (params[name] is None and default is not None):
        if default is None:
            raise RelayRpcError(RelayError.INVALID_PARAMS, f"params.{name} is missing")
        return default
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT32_MAX:
        raise RelayRpcError(RelayError.INVALID_PARAMS, f"params.{name} must be an integer in [0, 2**32)")
    return value


def _batch(params: dict[str, Any], name: str, limits: RelayLimits) -> list[Any]:
    items = params.get(name)
    if not isinstance(items, list):
        raise RelayRpcError(RelayError.INVALID_PARAMS, f"params.{name} must be an array")
    if not items:
        raise RelayRpcError.tagged(RelayErrorTag.BATCH_EMPTY, f"params.{name} must not be empty")
    if len(items) > limits.max_batch:
        raise RelayRpcError.tagged(
            RelayErrorTag.BATCH_LIMIT_EXCEEDED, f"params.{name} has {len(items)} items; at most {limits.max_batch}"
        )
    return items


def _message(params: Any, client_id: str, now: float, limits: RelayLimits) -> StoredMessage:
    params = _params(params)
    topic = _topic(params.get("topic"))
    message = _string(params, "message")
    size = len(message.encode())
    if size > limits.max_message_bytes:
        raise RelayRpcError.tagged(
            RelayErrorTag.MESSAGE_TOO_LARGE, f"message is {size} bytes; at most {limits.max_message_bytes}"
        )
    ttl = _uint32(params, "ttl", None)
    if ttl < limits.min_ttl:
        raise RelayRpcError.tagged(RelayErrorTag.TTL_TOO_SHORT, f"ttl {ttl} s is below the minimum, {limits.min_ttl} s")
    if ttl > limits.max_ttl:
        raise RelayRpcError.tagged(RelayErrorTag.TTL_TOO_LONG, f"ttl {ttl} s is above the maximum, {limits.max_ttl} s")
    tag = _uint32(params, "tag", 0)
    prompt = params.get("prompt") is True
    return StoredMessage(topic, message, message_id(message), tag, int(now * 1000), now + ttl, client_id, prompt)


def _wire_message(m: StoredMessage) -> dict[str, Any]:
    return {"topic": m.topic, "message": m.message, "publishedAt": m.published_at, "tag": m.tag}


# ---------------------------------------------------------------------------------------- session

_SUB_PREFIX = b'{"id":'
_SUB_MIDDLE = b',"jsonrpc":"2.0","method":"' + RelayMethod.SUBSCRIPTION.value.encode() + b'","params":{"id":"'
_SUB_DATA = b'","data":'
_SUB_SUFFIX = b"}}"

Handler = Callable[["RelaySession", Any, float], Awaitable[Any]]


class RelaySession:
    """One authenticated client connection (or one stateless ``POST /rpc`` call when ``live`` is False)."""

    __slots__ = ("_draining", "_flush", "_in_flight", "_replaying", "client_id", "emit", "live", "state", "topics")

    def __init__(self, state: RelayState, client_id: str, emit: Emit, *, live: bool = True) -> None:
        self.state = state
        self.client_id = client_id
        self.emit = emit
        self.live = live
        self.topics: dict[str, str] = {}  # topic -> subscription id
        # topic -> live messages held back while the topic's backlog is read
        self._replaying: dict[str, list[tuple[StoredMessage, bytes]]] = {}
        self._in_flight: dict[int, tuple[str, str]] = {}  # relay request id -> (topic, message_id)
        self._flush: list[tuple[list[str], list[StoredMessage]]] = []  # backlog pages to send after the answer
        self._draining: dict[str, int] = {}  # topic -> seq of the last backlog message sent (more to read)

    # -- input

    async def receive(self, frame: bytes | str, now: float) -> None:
        """Handle one frame from the client; every answer goes to ``emit``."""
        try:
            msg = jsonrpc.parse_message(frame, max_bytes=self.state.limits.max_frame_bytes)
        except jsonrpc.JsonRpcError as exc:  # garbage costs a token like a request, or it would be free to flood
            error = exc.to_error() if self.state.allow(self.client_id, now) else _too_many().to_error(exc.id)
            self.emit(jsonrpc.encode(error))
            return
        if isinstance(msg, jsonrpc.Request):
            await self._request(msg, now)
        elif isinstance(msg, jsonrpc.Result):
            await self._acknowledged(msg.id, msg.result, now)
        elif isinstance(msg.id, int):  # the client refused a delivery: forget it, it stays unacknowledged
            self._in_flight.pop(msg.id, None)

    async def _request(self, request: jsonrpc.Request, now: float) -> None:
        try:
            if not self.state.allow(self.client_id, now):
                raise _too_many()
            method = canonical_method(request.method)
            handler = _HANDLERS.get(method) if method is not None else None
            if handler is None:
                raise RelayRpcError(RelayError.METHOD_NOT_FOUND, f"unknown method {request.method[:64]!r}")
            result = await handler(self, request.params, now)
        except RelayRpcError as exc:
            self._abort_replays()
            self.emit(jsonrpc.encode(exc.to_error(request.id)))
            return
        except Exception:  # storage unreachable (Redis restarting, database down): answer, keep the socket
            log.exception("relay %s failed", request.method[:64])
            self._abort_replays()
            error = RelayRpcError(RelayError.INTERNAL, "internal relay error (storage unavailable?); retry later")
            self.emit(jsonrpc.encode(error.to_error(request.id)))
            return
        except BaseException:
            self._abort_replays()
            raise
        self.emit(jsonrpc.encode(jsonrpc.Result(request.id, result)))
        self._finish_replays()

    async def _acknowledged(self, request_id: jsonrpc.JsonRpcId, result: Any, now: float) -> None:
        if not isinstance(request_id, int):
            return
        receipt = self._in_flight.pop(request_id, None)
        if receipt is not None and result is True:
            try:
                await self.state.mailbox.ack(self.client_id, (receipt,), now)
            except Exception as exc:  # the message stays unacknowledged and comes again (at least once)
                log.warning("relay could not store an ack: %s: %s", type(exc).__name__, exc)
        if self._draining and len(self._in_flight) <= self.state.limits.backlog_page // 2:
            await self._next_page(now)

    async def _next_page(self, now: float) -> None:
        """Read and push the next page of the draining topics' backlog (holding live messages meanwhile)."""
        topics = list(self._draining)
        for topic in topics:
            self._replaying[topic] = []
        try:
            page = await self.state.mailbox.pending(
                self.client_id, topics, now, self.state.limits.backlog_page, dict(self._draining)
            )
        except Exception as exc:  # tried again on the next ack; nothing is lost (it is all in the mailbox)
            log.warning("relay could not read a backlog page: %s: %s", type(exc).__name__, exc)
            for topic in topics:
                self._replaying.pop(topic, None)
            return
        self._send_page(topics, page)

    # -- output

    def deliver(self, message: StoredMessage, data: bytes) -> None:
        """Router callback: send ``message`` now, or hold it while its topic's backlog is being read (or drop
        it while the backlog is drained page by page: a later page has it)."""
        held = self._replaying.get(message.topic)
        if held is not None:
            held.append((message, data))
        elif message.topic in self.topics and message.topic not in self._draining:
            self._push(message, data, self.topics[message.topic])

    def _push(self, message: StoredMessage, data: bytes, sub_id: str) -> None:
        rid = self.state.ids.next(message.published_at / 1000)
        self._in_flight[rid] = (message.topic, message.message_id)
        if len(self._in_flight) > self.state.limits.max_in_flight:
            del self._in_flight[next(iter(self._in_flight))]
        self.emit(b"".join((_SUB_PREFIX, b"%d" % rid, _SUB_MIDDLE, sub_id.encode(), _SUB_DATA, data, _SUB_SUFFIX)))

    def close(self) -> None:
        """The connection is gone: stop routing to it."""
        for topic in self.topics:
            self.state.router.remove(topic, self)
        self.topics.clear()
        self._replaying.clear()
        self._draining.clear()
        self._in_flight.clear()

    # -- subscriptions

    async def _subscribe(self, topics: list[str], now: float) -> list[str]:
        """Register ``topics`` with the router (holding live messages), then read their backlogs."""
        if not self.live:  # POST /rpc: a standing subscription of the client id, nothing is pushed
            if self.state.watch is not None:  # persists it and tells the other nodes
                await self.state.watch.subscriptions_changed(self.client_id, topics, True, now)
            else:
                for topic in topics:
                    self.state.http_subscriptions.setdefault(topic, set()).add(self.client_id)
            return [subscription_id(topic, self.client_id) for topic in topics]
        ids: list[str] = []
        fresh: list[str] = []
        for topic in topics:
            sub_id = self.topics.get(topic) or subscription_id(topic, self.client_id)
            ids.append(sub_id)
            if topic not in self._replaying:
                fresh.append(topic)
                self._replaying[topic] = []
                self.topics[topic] = sub_id
                self.state.router.add(topic, self)
        if fresh:
            for hook in self.state.on_subscribe:
                await hook(fresh)
        if fresh:
            for topic in fresh:
                self._draining.pop(topic, None)
            page = await self.state.mailbox.pending(self.client_id, fresh, now, self.state.limits.backlog_page)
            self._flush.append((fresh, page))
        return ids

    def _finish_replays(self) -> None:
        flush, self._flush = self._flush, []
        for topics, page in flush:
            self._send_page(topics, page)

    def _send_page(self, topics: list[str], page: list[StoredMessage]) -> None:
        """Push a backlog page; if it was full the topics drain on, else push what was held back meanwhile."""
        for m in page:
            sub_id = self.topics.get(m.topic)
            if sub_id is not None:
                self._push(m, subscription_data(m), sub_id)
        if len(page) >= self.state.limits.backlog_page:
            last = {m.topic: m.seq for m in page}
            for topic in topics:
                self._replaying.pop(topic, None)  # held ones are after the cursor: a later page has them
                if topic in self.topics:
                    self._draining[topic] = max(self._draining.get(topic, 0), last.get(topic, 0))
            return
        seen = {m.message_id for m in page}
        for topic in topics:
            self._draining.pop(topic, None)
            held = self._replaying.pop(topic, [])
            sub_id = self.topics.get(topic)
            if sub_id is None:
                continue
            for m, data in held:
                if m.message_id not in seen:
                    self._push(m, data, sub_id)

    def _abort_replays(self) -> None:
        """A subscribe failed half-way: deliver what was held, so no live message is lost."""
        self._finish_replays()
        for topic, held in list(self._replaying.items()):
            del self._replaying[topic]
            sub_id = self.topics.get(topic)
            if sub_id is not None:
                for m, data in held:
                    self._push(m, data, sub_id)

    async def _unsubscribe(self, topics: Sequence[str], now: float) -> None:
        if not self.live:
            if self.state.watch is not None:
                await self.state.watch.subscriptions_changed(self.client_id, topics, False, now)
                return
            for topic in topics:
                clients = self.state.http_subscriptions.get(topic)
                if clients is not None:
                    clients.discard(self.client_id)
                    if not clients:
                        del self.state.http_subscriptions[topic]
            return
        for topic in topics:
            self._unsubscribe_live(topic)

    def _unsubscribe_live(self, topic: str) -> None:
        if self.topics.pop(topic, None) is not None:
            self.state.router.remove(topic, self)
        self._replaying.pop(topic, None)
        self._draining.pop(topic, None)

    # -- publishing

    async def _publish(self, messages: list[StoredMessage], now: float) -> bool:
        try:
            new = await self.state.mailbox.put(messages, now)
        except MailboxFullError as exc:
            raise RelayRpcError.tagged(RelayErrorTag.MAILBOX_LIMIT_EXCEEDED, str(exc)) from exc
        stored = [m for m, is_new in zip(messages, new, strict=True) if is_new]
        for m in stored:
            self.state.router.route(m)
        if stored and self.state.watch is not None:
            await self.state.watch.on_stored(stored, now)
        if stored:
            for hook in self.state.on_publish:
                await hook(stored, now)
        return True


# --------------------------------------------------------------------------------------- handlers


async def _h_publish(session: RelaySession, params: Any, now: float) -> Any:
    return await session._publish([_message(params, session.client_id, now, session.state.limits)], now)


async def _h_batch_publish(session: RelaySession, params: Any, now: float) -> Any:
    items = _batch(_params(params), "messages", session.state.limits)
    messages = [_message(p, session.client_id, now, session.state.limits) for p in items]
    return await session._publish(messages, now)


async def _h_subscribe(session: RelaySession, params: Any, now: float) -> Any:
    return (await session._subscribe([_topic(_params(params).get("topic"))], now))[0]


async def _h_batch_subscribe(session: RelaySession, params: Any, now: float) -> Any:
    topics = [_topic(t) for t in _batch(_params(params), "topics", session.state.limits)]
    return await session._subscribe(topics, now)


async def _h_subscribe_blocking(session: RelaySession, params: Any, now: float) -> Any:
    return {"id": await _h_subscribe(session, params, now)}


async def _h_batch_subscribe_blocking(session: RelaySession, params: Any, now: float) -> Any:
    return [{"id": sub_id} for sub_id in await _h_batch_subscribe(session, params, now)]


async def _h_unsubscribe(session: RelaySession, params: Any, now: float) -> Any:
    await session._unsubscribe([_topic(_params(params).get("topic"))], now)
    return True


async def _h_batch_unsubscribe(session: RelaySession, params: Any, now: float) -> Any:
    items = _batch(_params(params), "subscriptions", session.state.limits)
    topics = [_topic(_params(item).get("topic")) for item in items]
    await session._unsubscribe(topics, now)
    return True


async def _fetch(session: RelaySession, topics: list[str], now: float) -> Any:
    page = session.state.limits.fetch_page
    found = await session.state.mailbox.pending(session.client_id, topics, now, page + 1)
    messages = found[:page]
    if messages:
        await session.state.mailbox.ack(session.client_id, [(m.topic, m.message_id) for m in messages], now)
    return {"messages": [_wire_message(m) for m in messages], "hasMore": len(found) > page}


async def _h_fetch(session: RelaySession, params: Any, now: float) -> Any:
    return await _fetch(session, [_topic(_params(params).get("topic"))], now)


async def _h_batch_fetch(session: RelaySession, params: Any, now: float) -> Any:
    topics = [_topic(t) for t in _batch(_params(params), "topics", session.state.limits)]
    return await _fetch(session, topics, now)


async def _h_batch_receive(session: RelaySession, params: Any, now: float) -> Any:
    items = _batch(_params(params), "receipts", session.state.limits)
    receipts: list[tuple[str, str]] = []
    for item in items:
        receipt = _params(item)
        receipts.append((_topic(receipt.get("topic")), _string(receipt, "messageId")))
    await session.state.mailbox.ack(session.client_id, receipts, now)
    return True


_HANDLERS: dict[RelayMethod | None, Handler] = {
    RelayMethod.PUBLISH: _h_publish,
    RelayMethod.BATCH_PUBLISH: _h_batch_publish,
    RelayMethod.SUBSCRIBE: _h_subscribe,
    RelayMethod.BATCH_SUBSCRIBE: _h_batch_subscribe,
    RelayMethod.SUBSCRIBE_BLOCKING: _h_subscribe_blocking,
    RelayMethod.BATCH_SUBSCRIBE_BLOCKING: _h_batch_subscribe_blocking,
    RelayMethod.UNSUBSCRIBE: _h_unsubscribe,
    RelayMethod.BATCH_UNSUBSCRIBE: _h_batch_unsubscribe,
    RelayMethod.FETCH_MESSAGES: _h_fetch,
    RelayMethod.BATCH_FETCH_MESSAGES: _h_batch_fetch,
    RelayMethod.BATCH_RECEIVE: _h_batch_receive,
}


def register_handler(method: RelayMethod, handler: Handler) -> None:
    """Add a method to the dispatch table (the watch module registers irn_watchRegister/Unregister)."""
    _HANDLERS[method] = handler
