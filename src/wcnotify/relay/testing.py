"""Helpers for tests that need a relay: a raw JSON-RPC WebSocket peer and topic/JWT makers.

Other services' tests use these too (``async with RelayServer(RelayConfig(port=0)) as relay`` starts a real
relay on a free loopback port). Everything here stays on loopback and bounds its waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.relay.client import relay_auth_jwt


def random_topic() -> str:
    return os.urandom(32).hex()


class RawRelayPeer:
    """A bare WebSocket JSON-RPC peer: sends exactly what it is told, and sorts what comes back into answers
    (by id) and pushes (``irn_subscription`` requests, which it does *not* acknowledge unless told)."""

    def __init__(self, ws: ClientConnection, key: Ed25519KeyPair) -> None:
        self.ws = ws
        self.key = key
        self.pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames: list[dict[str, Any]] = []  # every frame received, in order
        self._answers: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._unmatched: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ids = itertools.count(1_700_000_000_000_000_000)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, key: Ed25519KeyPair | None = None, **kwargs: Any) -> RawRelayPeer:
        key = key or Ed25519KeyPair.generate()
        token = relay_auth_jwt(key, url, int(time.time()))
        ws = await connect(f"{url}/?auth={token}", proxy=None, compression=None, **kwargs)
        return cls(ws, key)

    async def _read(self) -> None:
        async for frame in self.ws:
            obj = orjson.loads(frame)
            self.frames.append(obj)
            if isinstance(obj, dict) and obj.get("method"):
                self.pushes.put_nowait(obj)
                continue
            future = self._answers.pop(obj.get("id") if isinstance(obj, dict) else None, None)
            if future is not None:
                future.set_result(obj)
            else:
                self._unmatched.put_nowait(obj)

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def call(self, method: str, params: Any = None, *, id: Any = None, timeout: float = 5) -> dict[str, Any]:
        """Send a request and return the whole answer object (result or error)."""
        rid = next(self._ids) if id is None else id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[rid] = future
        request: dict[str, Any] = {"id": rid, "jsonrpc": "2.0", "method": method}
        if params is not None:
            request["params"] = params
        await self.ws.send(orjson.dumps(request).decode())
        return await asyncio.wait_for(future, timeout)

    async def unmatched(self, timeout: float = 5) -> dict[str, Any]:
        """The next answer whose id matched no call (an error for a frame without a readable id)."""
        return await asyncio.wait_for(self._unmatched.get(), timeout)

    async def push(self, timeout: float = 5) -> dict[str, Any]:
        return await asyncio.wait_for(self.pushes.get(), timeout)

    async def ack(self, push: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps({"id": push["id"], "jsonrpc": "2.0", "result": True}).decode())

    async def no_push(self, wait: float = 0.2) -> bool:
        """True if no push arrives within ``wait`` seconds."""
        try:
            await asyncio.wait_for(self.pushes.get(), wait)
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # the reader ends with the socket
            await self._reader

    async def __aenter__(self) -> RawRelayPeer:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
