"""The relay over the network: one ASGI app (Starlette) served by uvicorn.

* ``GET /`` upgraded to a WebSocket: the relay-auth JWT comes as ``?auth=`` or ``Authorization: Bearer``.
  Missing or bad auth is refused *before* the upgrade with HTTP 401 and the reason in the body (the ASGI
  "websocket.http.response" extension, which uvicorn implements). Once accepted, every text or binary
  frame is one JSON-RPC message for :class:`~wcnotify.relay.core.RelaySession`; answers and
  ``irn_subscription`` pushes are text frames (the JS client only parses text).
* ``POST /rpc``: the same methods for servers without a socket: Bearer JWT, one JSON-RPC request in the
  body, its answer in the response body. A subscription made here is a standing one of the client id:
  nothing is pushed, the client fetches or hears of messages through its watch webhook.
* ``GET /health`` (200 once the app accepts connections; its open connections and event loop),
  ``GET /public-key`` (hex Ed25519 key of the relay).

uvicorn does the WebSocket keepalive (a ping every ``RELAY_PING_INTERVAL`` s; no pong within
``RELAY_PING_TIMEOUT`` s drops the socket) and refuses frames over ``max_frame_bytes`` (close 1009).
A client that reads too slowly to keep its outbox under ``max_outbox`` frames is closed with 1013: what it
missed stays in the mailbox and comes back when it subscribes again. Under uvicorn with our protocol
(``relay/ws_protocol.py``) frames skip ASGI's ``websocket.send`` and go straight to the connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis as RedisClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from wcnotify import spec
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.relay.auth import RelayAuthError, authenticate, default_audiences
from wcnotify.relay.core import RelaySession, RelayState
from wcnotify.relay.limits import RelayLimits
from wcnotify.relay.mailbox import Mailbox, MemoryMailbox
from wcnotify.relay.redis_backplane import RedisBackplane
from wcnotify.relay.redis_mailbox import RedisMailbox
from wcnotify.relay.redis_watch import RedisWatchStore
from wcnotify.relay.sql_mailbox import SqlMailbox
from wcnotify.relay.sql_watch import SqlWatchStore
from wcnotify.relay.watch import WatchService
from wcnotify.relay.watch_store import MemoryWatchStore, WatchStore
from wcnotify.relay.ws_protocol import DIRECT_SEND, RelayWebSocketProtocol
from wcnotify.serving import AsgiService, bearer_token, client_host

log = logging.getLogger("wcnotify.relay")

Clock = Callable[[], float]


@dataclass(frozen=True)
class RelayConfig:
    """Everything a relay node is started with; the CLI builds one from its options."""

    host: str = "127.0.0.1"
    port: int = 8080  # 0 picks a free port (tests)
    database_url: str | None = None  # sqlite:///PATH, postgresql://… or redis://…; None: in memory (or Redis)
    # redis://…: route between nodes over Redis pub/sub, and keep the mailbox there unless database_url is set
    redis_url: str | None = None
    redis_prefix: str = spec.RELAY_REDIS_KEY_PREFIX  # every key and channel of this relay cluster starts so
    public_urls: tuple[str, ...] = ()  # extra URLs clients may name as the JWT aud
    limits: RelayLimits = field(default_factory=RelayLimits)
    key_seed: bytes | None = None  # 32-byte Ed25519 seed of the relay's own key; random when None
    purge_interval: float = spec.RELAY_PURGE_INTERVAL
    ping_interval: float = spec.RELAY_PING_INTERVAL
    ping_timeout: float = spec.RELAY_PING_TIMEOUT
    watch_retry_base: float = 1.0  # seconds before the first webhook retry, doubled per attempt
    # uvicorn's WebSocket implementation: "websockets-sansio" keeps pings on timers (one task per connection)
    # where "websockets" runs three more tasks per connection; both do the auth denial response and pings
    ws_impl: str = spec.RELAY_WS_IMPL


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


async def open_mailbox(url: str | None, per_topic_cap: int, redis_prefix: str = spec.RELAY_REDIS_KEY_PREFIX) -> Mailbox:
    """The mailbox backend a database URL names (None: in memory)."""
    if url is None or url in ("", "memory", "memory:"):
        return MemoryMailbox(per_topic_cap)
    if url.startswith(("sqlite", "postgres")):
        return await SqlMailbox.open(url, per_topic_cap)
    if url.startswith(_REDIS_SCHEMES):
        return await RedisMailbox.open(url, per_topic_cap, redis_prefix)
    raise ValueError(f"unsupported relay database URL {url!r}: use sqlite:///PATH, postgresql://… or redis://…")


def store_for(mailbox: Mailbox) -> WatchStore:
    """The watch store that lives where ``mailbox`` lives (same engine, same Redis), else in memory."""
    if isinstance(mailbox, SqlMailbox):
        return SqlWatchStore(mailbox.engine)
    if isinstance(mailbox, RedisMailbox):
        return RedisWatchStore(mailbox.redis, mailbox.prefix)
    return MemoryWatchStore()


class RelayApp:
    """The ASGI application of one relay node, and the shared state its connections use."""

    def __init__(
        self,
        config: RelayConfig,
        audiences: frozenset[str],
        *,
        clock: Clock = time.time,
        mailbox: Mailbox | None = None,
    ) -> None:
        self.config = config
        self.audiences = audiences
        self.clock = clock
        self.key = Ed25519KeyPair.from_seed(config.key_seed) if config.key_seed else Ed25519KeyPair.generate()
        self._mailbox = mailbox
        self.state: RelayState | None = None
        self.backplane: RedisBackplane | None = None
        self.connections = 0
        self.app = Starlette(
            routes=[
                WebSocketRoute("/", self.websocket),
                Route(spec.RELAY_HTTP_PATH_RPC, self.rpc, methods=["POST"]),
                Route(spec.RELAY_HTTP_PATH_HEALTH, self.health, methods=["GET"]),
                Route(spec.RELAY_HTTP_PATH_PUBLIC_KEY, self.public_key, methods=["GET"]),
            ],
            lifespan=self.lifespan,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        config = self.config
        mailbox = self._mailbox or await open_mailbox(
            config.database_url or config.redis_url, config.limits.mailbox_per_topic, config.redis_prefix
        )
        watch = WatchService(
            self.key, self.audiences, self.clock, store_for(mailbox), retry_base=config.watch_retry_base
        )
        self.state = RelayState(mailbox, limits=config.limits, watch=watch)
        if config.redis_url:
            node = os.urandom(8).hex()  # also the Redis client name, so an operator can tell nodes apart
            redis = RedisClient.from_url(config.redis_url, client_name=f"wcnotify-relay:{node}")
            backplane = self.backplane = RedisBackplane(redis, self.state.router, config.redis_prefix, node=node)
            self.state.router.listener = backplane
            self.state.on_publish.append(backplane.publish)
            self.state.on_subscribe.append(backplane.ready)
            backplane.on_notice = watch.on_notice
            backplane.on_remote = watch.on_remote
            backplane.on_reconnect = watch.resync
            watch.announce = backplane.announce
            await backplane.start()
        await watch.start(self.state)
        purger = asyncio.create_task(self._purge_loop(self.state))
        try:
            yield
        finally:
            if self.backplane is not None:
                await self.backplane.stop()
            await watch.stop()
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            await mailbox.close()

    async def _purge_loop(self, state: RelayState) -> None:
        """Delete expired messages and acks, forget idle rate-limit buckets, and purge and reload the watch
        store, every purge_interval."""
        while True:
            await asyncio.sleep(self.config.purge_interval)
            try:
                now = self.clock()
                await state.mailbox.purge(now)
                state.prune_buckets(now)
                if state.watch is not None:
                    await state.watch.maintain(now)
            except Exception:  # a failed sweep is retried on the next tick; reads skip expired rows anyway
                log.exception("relay mailbox purge failed")

    def _state(self) -> RelayState:
        if self.state is None:
            raise RuntimeError("the relay app is not started (lifespan did not run)")
        return self.state

    # -- WebSocket

    async def websocket(self, ws: WebSocket) -> None:
        token = ws.query_params.get(spec.RELAY_AUTH_QUERY_PARAM) or bearer_token(ws.headers.get("authorization"))
        try:
            client_id = authenticate(token, now=int(self.clock()), audiences=self.audiences)
        except RelayAuthError as exc:
            if "websocket.http.response" in ws.scope.get("extensions", {}):
                await ws.send_denial_response(PlainTextResponse(exc.reason, status_code=401))
            else:  # a server without the denial extension: accept and close with the fatal auth code
                await ws.accept()
                await ws.close(spec.WS_CLOSE_AUTH_FATAL, exc.reason[:120])
            return
        state = self._state()
        await ws.accept()
        direct: RelayWebSocketProtocol | None = ws.scope["extensions"].get(DIRECT_SEND)
        outbox: _Outbox | None = None
        if direct is not None:  # our uvicorn protocol: frames go straight to the connection (ws_protocol.py)
            direct.outbox_limit = state.limits.max_outbox
            emit = direct.send_frame
        else:  # any other ASGI server or uvicorn implementation
            outbox = _Outbox(ws, state.limits.max_outbox)
            emit = outbox.emit
        session = RelaySession(state, client_id, emit)
        self.connections += 1
        # received frames go straight to the session (ASGI then carries only the disconnect) when the storage may
        # run outside a task: the memory mailbox without a Redis backplane (see Mailbox.runs_outside_a_task)
        if direct is not None and state.mailbox.runs_outside_a_task and self.backplane is None:
            clock = self.clock
            direct.attach(lambda data: session.receive(data, clock()))
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                data: str | bytes = text if text is not None else (message.get("bytes") or b"")
                await session.receive(data, self.clock())
        finally:
            try:
                if direct is not None:
                    await direct.detach()  # no frame is being handled once the session is closed
            finally:
                self.connections -= 1
                session.close()
                if outbox is not None:
                    await outbox.cancel()

    # -- HTTP

    async def rpc(self, request: Request) -> Response:
        try:
            client_id = authenticate(
                bearer_token(request.headers.get("authorization")), now=int(self.clock()), audiences=self.audiences
            )
        except RelayAuthError as exc:
            return JSONResponse({"error": exc.reason}, status_code=401)
        state = self._state()
        cap = state.limits.max_frame_bytes
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > cap:
                return JSONResponse({"error": f"request body over {cap} bytes"}, status_code=413)
        frames: list[bytes] = []
        session = RelaySession(state, client_id, frames.append, live=False)
        await session.receive(bytes(body), self.clock())
        return Response(frames[0] if frames else b"", media_type="application/json")

    async def health(self, _request: Request) -> Response:
        # the loop this node really runs on (uvloop or asyncio: wcnotify/event_loop.py), for operators comparing nodes
        loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
        return Response(orjson.dumps({"status": "ok", "connections": self.connections, "eventLoop": loop}),
                        media_type="application/json")

    async def public_key(self, _request: Request) -> Response:
        return PlainTextResponse(self.key.public_key.hex())


class _Outbox:
    """The frames waiting for one connection, and a writer task that exists only while there are some.

    An idle connection thus costs no task and no queue (a writer per connection was a good part of the memory
    per idle connection). Frames go out in order; past ``limit`` waiting frames the client is closed with 1013.
    """

    __slots__ = ("frames", "limit", "overflowed", "writer", "ws")

    def __init__(self, ws: WebSocket, limit: int) -> None:
        self.ws = ws
        self.limit = limit
        self.frames: collections.deque[bytes] = collections.deque()
        self.overflowed = False
        self.writer: asyncio.Task[None] | None = None

    def emit(self, frame: bytes) -> None:
        if self.overflowed:
            return
        if len(self.frames) >= self.limit:
            self.overflowed = True
        else:
            self.frames.append(frame)
        if self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            while self.frames:
                frame = self.frames.popleft()
                await self.ws.send({"type": "websocket.send", "text": frame.decode()})
            if self.overflowed:
                await self.ws.close(1013, "too slow: reconnect and subscribe again")
        except Exception as exc:  # the socket is gone; the receive loop sees the disconnect and cleans up
            log.debug("relay writer stopped: %s", exc)
            self.frames.clear()
        finally:
            self.writer = None

    async def cancel(self) -> None:
        self.frames.clear()
        self.overflowed = True
        writer = self.writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer


# CPython's collector settings for a relay process of its own (RelayServer.run). Such a process holds every
# connection's objects and allocates several per routed message. Two measurements shaped them:
# * throughput: with the default thresholds (700, 10, 10) the collector's frequent passes, full ones over all
#   connections included, took a fifth to a quarter of the relay's CPU in the fan-out bench;
# * tail latency: with (50_000, 50, 50) each young collection went through 50,000 objects and paused the
#   loop 10 to 17 ms, several times a run at 8,000 msgs/s; and every full pass went through the modules and
#   classes imported at start, 90 ms with the defaults. The relay's p99 then was 15 to 190 ms where the bare
#   forwarding server's was 5 to 8 (bench/relay.py --rate 8000).
# So the young generation is 5,000 objects (pauses of 1 to 3 ms, a rare older pass about 13 ms), what start-up
# made is frozen out of every pass (gc.freeze), and the memory mailbox keeps its messages in untracked
# tuples (relay/mailbox.py).
GC_THRESHOLD = (5_000, 20, 20)


class RelayServer(AsgiService):
    """A running relay node: ``async with RelayServer(config) as relay: relay.ws_url …``."""

    def __init__(self, config: RelayConfig, *, clock: Clock = time.time, mailbox: Mailbox | None = None) -> None:
        self.config = config
        self.clock = clock
        limits = config.limits
        super().__init__(
            None, config.host, config.port, name="relay",
            ws_max_size=limits.max_frame_bytes,
            ws_ping_interval=config.ping_interval,
            ws_ping_timeout=config.ping_timeout,
            ws_per_message_deflate=False,
            # websockets-sansio, with reads paused only past a backlog (relay/ws_protocol.py)
            ws=RelayWebSocketProtocol if config.ws_impl == "websockets-sansio" else config.ws_impl,
        )
        self.relay = RelayApp(
            config, default_audiences(config.host, self.port, config.public_urls), clock=clock, mailbox=mailbox
        )
        self.app = self.relay.app

    def run(self, log_level: str = "info") -> None:
        """Serve until interrupted, as the process's only job (``wcnotify relay``): the collector is tuned for
        it (:data:`GC_THRESHOLD`, and start-up's objects frozen); a relay embedded in another process leaves the
        collector alone."""
        gc.set_threshold(*GC_THRESHOLD)
        gc.freeze()  # what start-up made (modules, classes, the app) lives as long as the process
        super().run(log_level)

    @property
    def host_for_clients(self) -> str:
        return client_host(self.config.host)

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host_for_clients}:{self.port}"

    @property
    def http_url(self) -> str:
        return self.url


def describe(config: RelayConfig) -> dict[str, Any]:
    """A short summary of a configuration for the startup log line."""
    return {
        "host": config.host, "port": config.port, "database": config.database_url or config.redis_url or "memory",
        "redis": config.redis_url,
    }
