"""The few ASGI steps the dapp SDK's two small apps (did_host, webhooks) share, written against plain ASGI so
either app runs alone under any server or mounts inside a dapp's own FastAPI/Starlette/Django app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer a server's startup and shutdown: nothing to set up (uvicorn waits for it with ``lifespan=on``)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it is over ``limit`` bytes (the rest is not read)."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return body
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            return body


async def respond(
    send: Send, status: int, body: bytes, content_type: bytes = b"application/json",
    headers: tuple[tuple[bytes, bytes], ...] = (), *, head: bool = False,
) -> None:
    """One complete response (``head``: headers only, with the length the GET body would have)."""
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": b"" if head else body})


async def respond_json(send: Send, status: int, value: Any, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    await respond(send, status, orjson.dumps(value), headers=headers)
