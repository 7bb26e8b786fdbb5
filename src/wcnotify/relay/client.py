"""Python clients of the relay: :class:`RelayClient` (WebSocket, push) and :class:`RelayHttpClient` (POST /rpc).

``RelayClient`` authenticates with its own Ed25519 key (the key's did:key is its client id, so the relay's
acks and mailbox follow the key, not the connection). Incoming ``irn_subscription`` messages are handed to
``on_message`` (if given) or queued for ``async for message in client.messages()``, and acknowledged with
``true`` once handed over. When the socket drops, the client reconnects with exponential backoff and
re-subscribes every topic in one ``irn_batchSubscribe``; publishes interrupted by a drop are retried.
A relay that refuses the auth JWT (HTTP 401) is not retried: that needs a fix, not a wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from wcnotify import spec
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.did import encode_did_key
from wcnotify.protocol.jwt import RelayAuthClaims
from wcnotify.spec import RelayMethod

log = logging.getLogger("wcnotify.relay.client")



def publish_params(topic: str, message: str, ttl: int, tag: int, prompt: bool) -> dict[str, Any]:
    """``irn_publish`` params as the JS client writes them: ``prompt`` only when set."""
    params: dict[str, Any] = {"topic": topic, "message": message, "ttl": ttl, "tag": tag}
    if prompt:
        params["prompt"] = True
    return params

class RelayClientError(Exception):
    """Base of every error the relay clients raise."""


class RelayRequestError(RelayClientError):
    """The relay answered with a JSON-RPC error; ``tag`` is its RelayErrorTag string when it sent one."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code}{', ' + str(data) if data is not None else ''})")
        self.code = code
        self.message = message
        self.data = data

    @property
    def tag(self) -> str | None:
        return self.data if isinstance(self.data, str) else None


class RelayTimeoutError(RelayClientError):
    """No answer within the request timeout; the relay may be overloaded or the network down."""


class RelayConnectionError(RelayClientError):
    """Not connected (never connected, dropped mid-request, or closed by the caller)."""


class RelayAuthRejectedError(RelayClientError):
    """The relay refused the auth JWT (HTTP 401): check the relay URL (it is the JWT aud) and the clock."""


@dataclass(frozen=True, slots=True)
class RelayMessage:
    """One message pushed by the relay."""

    subscription_id: str
    topic: str
    message: str
    published_at: int
    tag: int


MessageCallback = Callable[[RelayMessage], Awaitable[None] | None]


def relay_auth_jwt(key: Ed25519KeyPair, aud: str, now: int, ttl: int = spec.RELAY_AUTH_TTL) -> str:
    """The relay auth JWT exactly as the JS relayer writes it (random ``sub``, ``exp = iat + 1 day``)."""
    iss = encode_did_key(key.public_key)
    return RelayAuthClaims(iss=iss, sub=os.urandom(32).hex(), aud=aud, iat=now, exp=now + ttl).sign(key)


class _Ids:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._counter = itertools.count()

    def next(self) -> int:
        return jsonrpc.big_int_rpc_id(int(self._clock() * 1000), next(self._counter) % 10**6)


def _answer(response: jsonrpc.Response) -> Any:
    if isinstance(response, jsonrpc.Error):
        raise RelayRequestError(response.code, response.message, response.data)
    return response.result


class RelayClient:
    """A WebSocket connection to a relay, kept alive across drops. Use ``async with``."""

    def __init__(
        self,
        url: str,
        key: Ed25519KeyPair | None = None,
        *,
        on_message: MessageCallback | None = None,
        request_timeout: float = spec.RELAY_REQUEST_TIMEOUT,
        reconnect: bool = True,
        reconnect_min: float = spec.RELAY_RECONNECT_MIN,
        reconnect_max: float = spec.RELAY_RECONNECT_MAX,
        publish_retries: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.key = key or Ed25519KeyPair.generate()
        self.client_id = encode_did_key(self.key.public_key)
        self.on_message = on_message
        self.request_timeout = request_timeout
        self.reconnect = reconnect
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.publish_retries = publish_retries
        self.clock = clock
        self.topics: dict[str, str] = {}  # topic -> subscription id
        self.connects = 0  # how many times a connection was opened (tests watch reconnects)
        self._ids = _Ids(clock)
        self._ws: ClientConnection | None = None
        self._pending: dict[jsonrpc.JsonRpcId, asyncio.Future[jsonrpc.Response]] = {}
        self._inbox: asyncio.Queue[RelayMessage] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._closed = False
        self._runner: asyncio.Task[None] | None = None
        self._fatal: BaseException | None = None
        self._resubscriber: asyncio.Task[None] | None = None

    # -- lifecycle

    async def connect(self) -> None:
        """Open the first connection (errors are raised here, not retried) and start the keeper task."""
        ws = await self._open()
        self._attach(ws)
        self._runner = asyncio.create_task(self._run(ws))

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        self._fail_pending(RelayConnectionError("client closed"))

    async def __aenter__(self) -> RelayClient:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _open(self) -> ClientConnection:
        token = relay_auth_jwt(self.key, self.url, int(self.clock()))
        sep = "&" if "?" in self.url else "?"
        try:
            return await connect(
                f"{self.url}{sep}{spec.RELAY_AUTH_QUERY_PARAM}={token}",
                proxy=None,
                max_size=spec.RELAY_MAX_FRAME_BYTES,
                compression=None,
                open_timeout=self.request_timeout,
            )
        except InvalidStatus as exc:
            if exc.response.status_code == 401:
                raise RelayAuthRejectedError(exc.response.body.decode(errors="replace")) from exc
            raise RelayConnectionError(f"relay refused the connection: HTTP {exc.response.status_code}") from exc
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise RelayConnectionError(f"cannot connect to {self.url}: {exc}") from exc

    def _attach(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.connects += 1
        self._connected.set()

    async def _run(self, ws: ClientConnection) -> None:
        """Read frames until the socket drops, then reconnect (with backoff) and re-subscribe."""
        while True:
            with contextlib.suppress(ConnectionClosed):
                await self._read(ws)
            self._connected.clear()
            self._ws = None
            self._fail_pending(RelayConnectionError("connection to the relay dropped"))
            if self._closed or not self.reconnect:
                return
            delay = self.reconnect_min
            while True:
                await asyncio.sleep(delay)
                if self._closed:
                    return
                try:
                    ws = await self._open()
                except RelayAuthRejectedError as exc:
                    self._fatal = exc
                    log.error("relay refused the auth JWT on reconnect: %s", exc)
                    return
                except RelayConnectionError as exc:
                    log.info("relay reconnect failed (%s); retrying in %.1f s", exc, delay)
                    delay = min(delay * 2, self.reconnect_max)
                    continue
                break
            self._attach(ws)
            self._resubscriber = asyncio.create_task(self._resubscribe())

    async def _resubscribe(self) -> None:
        topics = list(self.topics)
        try:
            step = spec.RELAY_BATCH_MAX
            for start in range(0, len(topics), step):
                await self.request(RelayMethod.BATCH_SUBSCRIBE, {"topics": topics[start : start + step]})
        except RelayClientError as exc:  # the next reconnect tries again
            log.warning("re-subscribe after reconnect failed: %s", exc)

    async def _read(self, ws: ClientConnection) -> None:
        async for frame in ws:
            try:
                msg = jsonrpc.parse_message(frame)
            except jsonrpc.JsonRpcError:
                log.warning("relay sent a frame that is not JSON-RPC: %.100r", frame)
                continue
            if isinstance(msg, jsonrpc.Request):
                await self._incoming(ws, msg)
            else:
                future = self._pending.pop(msg.id, None) if msg.id is not None else None
                if future is not None and not future.done():
                    future.set_result(msg)

    async def _incoming(self, ws: ClientConnection, request: jsonrpc.Request) -> None:
        ok = False
        if request.method == RelayMethod.SUBSCRIPTION and isinstance(request.params, dict):
            data = request.params.get("data") or {}
            message = RelayMessage(
                str(request.params.get("id", "")), data.get("topic", ""), data.get("message", ""),
                int(data.get("publishedAt", 0)), int(data.get("tag", 0)),
            )
            if self.on_message is not None:
                result = self.on_message(message)
                if inspect.isawaitable(result):
                    await result
            else:
                self._inbox.put_nowait(message)
            ok = True
        reply: jsonrpc.Response = (
            jsonrpc.Result(request.id, True) if ok else jsonrpc.Error(request.id, -32601, "unsupported")
        )
        with contextlib.suppress(ConnectionClosed):
            await ws.send(jsonrpc.encode(reply).decode())

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    # -- requests

    async def request(self, method: str, params: Any) -> Any:
        """Send one request and wait for its answer (RelayRequestError on a JSON-RPC error)."""
        if self._fatal is not None:
            raise self._fatal
        ws = self._ws
        if ws is None:
            try:
                await asyncio.wait_for(self._connected.wait(), self.request_timeout)
            except TimeoutError as exc:
                raise RelayConnectionError("not connected to the relay") from exc
            ws = self._ws
            if ws is None:
                raise RelayConnectionError("not connected to the relay")
        rid = self._ids.next()
        future: asyncio.Future[jsonrpc.Response] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            await ws.send(jsonrpc.encode(jsonrpc.Request(rid, method, params)).decode())
            response = await asyncio.wait_for(future, self.request_timeout)
        except ConnectionClosed as exc:
            raise RelayConnectionError("connection to the relay dropped") from exc
        except TimeoutError as exc:
            raise RelayTimeoutError(f"{method}: no answer within {self.request_timeout} s") from exc
        finally:
            self._pending.pop(rid, None)
        return _answer(response)

    async def _retrying(self, method: str, params: Any) -> Any:
        for attempt in range(self.publish_retries + 1):
            try:
                return await self.request(method, params)
            except (RelayConnectionError, RelayTimeoutError):
                if attempt == self.publish_retries or self._closed:
                    raise
                await asyncio.sleep(min(self.reconnect_min * 2**attempt, self.reconnect_max))
        raise AssertionError("unreachable")

    async def subscribe(self, topic: str) -> str:
        sub_id = str(await self.request(RelayMethod.SUBSCRIBE, {"topic": topic}))
        self.topics[topic] = sub_id
        return sub_id

    async def batch_subscribe(self, topics: Sequence[str]) -> list[str]:
        ids = [str(i) for i in await self.request(RelayMethod.BATCH_SUBSCRIBE, {"topics": list(topics)})]
        self.topics.update(zip(topics, ids, strict=True))
        return ids

    async def unsubscribe(self, topic: str) -> None:
        sub_id = self.topics.pop(topic, "")
        await self.request(RelayMethod.UNSUBSCRIBE, {"topic": topic, "id": sub_id})

    async def publish(
        self, topic: str, message: str, *, ttl: int = spec.RELAY_DEFAULT_TTL, tag: int = 0, prompt: bool = False
    ) -> None:
        """Publish (retried across reconnects: the relay stores a message once, so a retry is harmless)."""
        await self._retrying(RelayMethod.PUBLISH, publish_params(topic, message, ttl, tag, prompt))

    async def batch_publish(self, messages: Iterable[dict[str, Any]]) -> None:
        """``messages``: dicts with topic, message, ttl, tag (as irn_batchPublish takes them)."""
        await self._retrying(RelayMethod.BATCH_PUBLISH, {"messages": list(messages)})

    async def fetch_messages(self, topic: str) -> tuple[list[RelayMessage], bool]:
        result = await self.request(RelayMethod.FETCH_MESSAGES, {"topic": topic})
        return _fetched(result, self.topics.get(topic, "")), bool(result.get("hasMore"))

    async def batch_receive(self, receipts: Iterable[tuple[str, str]]) -> None:
        items = [{"topic": t, "messageId": m} for t, m in receipts]
        await self.request(RelayMethod.BATCH_RECEIVE, {"receipts": items})

    async def next_message(self, timeout: float | None = None) -> RelayMessage:
        """The next pushed message (only when no on_message callback is set)."""
        return await asyncio.wait_for(self._inbox.get(), timeout)

    async def messages(self) -> AsyncIterator[RelayMessage]:
        while True:
            yield await self._inbox.get()

    @property
    def connected(self) -> bool:
        return self._ws is not None


def _fetched(result: Any, sub_id: str) -> list[RelayMessage]:
    return [
        RelayMessage(sub_id, m["topic"], m["message"], int(m["publishedAt"]), int(m.get("tag", 0)))
        for m in result.get("messages", [])
    ]


class RelayHttpClient:
    """``POST /rpc`` for servers: publish, fetch and acknowledge without keeping a socket."""

    def __init__(
        self,
        url: str,
        key: Ed25519KeyPair | None = None,
        *,
        timeout: float = spec.RELAY_REQUEST_TIMEOUT,
        clock: Callable[[], float] = time.time,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.key = key or Ed25519KeyPair.generate()
        self.client_id = encode_did_key(self.key.public_key)
        self.clock = clock
        self._ids = _Ids(clock)
        self._http = http or httpx.AsyncClient(timeout=timeout, trust_env=False)
        self._token: tuple[str, float] | None = None

    def _auth(self) -> str:
        now = self.clock()
        if self._token is None or self._token[1] < now + 60:
            self._token = (relay_auth_jwt(self.key, self.url, int(now)), now + spec.RELAY_AUTH_TTL)
        return self._token[0]

    async def request(self, method: str, params: Any) -> Any:
        body = jsonrpc.encode(jsonrpc.Request(self._ids.next(), method, params))
        try:
            response = await self._http.post(
                self.url + spec.RELAY_HTTP_PATH_RPC,
                content=body,
                headers={"authorization": f"Bearer {self._auth()}", "content-type": "application/json"},
            )
        except httpx.TimeoutException as exc:
            raise RelayTimeoutError(f"{method}: no answer from {self.url}") from exc
        except httpx.HTTPError as exc:
            raise RelayConnectionError(f"cannot reach {self.url}: {exc}") from exc
        if response.status_code == 401:
            raise RelayAuthRejectedError(response.text)
        if response.status_code != 200:
            raise RelayConnectionError(f"relay answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            msg = jsonrpc.parse_message(response.content)
        except jsonrpc.JsonRpcError as exc:
            raise RelayConnectionError(f"relay answered something that is not JSON-RPC: {exc}") from exc
        if isinstance(msg, jsonrpc.Request):
            raise RelayConnectionError("relay answered with a request")
        return _answer(msg)

    async def publish(
        self, topic: str, message: str, *, ttl: int = spec.RELAY_DEFAULT_TTL, tag: int = 0, prompt: bool = False
    ) -> None:
        await self.request(RelayMethod.PUBLISH, publish_params(topic, message, ttl, tag, prompt))

    async def batch_publish(self, messages: Iterable[dict[str, Any]]) -> None:
        await self.request(RelayMethod.BATCH_PUBLISH, {"messages": list(messages)})

    async def fetch_messages(self, topic: str) -> tuple[list[RelayMessage], bool]:
        result = await self.request(RelayMethod.FETCH_MESSAGES, {"topic": topic})
        return _fetched(result, ""), bool(result.get("hasMore"))

    async def batch_receive(self, receipts: Iterable[tuple[str, str]]) -> None:
        items = [{"topic": t, "messageId": m} for t, m in receipts]
        await self.request(RelayMethod.BATCH_RECEIVE, {"receipts": items})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> RelayHttpClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
