"""Every wcnotify service stops within a bounded time, whatever its clients do (serving.AsgiService)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from wcnotify import spec
from wcnotify.dapp._asgi import lifespan
from wcnotify.serving import AsgiService


async def test_a_stopping_service_cancels_a_request_that_never_ends_after_the_grace_period() -> None:
    """uvicorn waits for running requests forever unless told otherwise: a handler stuck on a dead peer (or a
    client that stopped reading) kept a whole shutdown waiting. With the grace period the handler is
    cancelled and stop() returns; the default grace is spec.SERVICE_SHUTDOWN_GRACE."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        started.set()
        try:
            await asyncio.Event().wait()  # never answers
        except asyncio.CancelledError:
            cancelled.set()
            raise

    service = AsgiService(app, "127.0.0.1", 0, name="stuck", timeout_graceful_shutdown=0.5)
    assert service._uvicorn().config.timeout_graceful_shutdown == 0.5
    assert AsgiService(app, "127.0.0.1", 0, name="d")._uvicorn().config.timeout_graceful_shutdown == \
        spec.SERVICE_SHUTDOWN_GRACE
    await service.start()
    async with httpx.AsyncClient(trust_env=False) as http:
        request = asyncio.create_task(http.get(f"{service.url}/", timeout=30))
        await asyncio.wait_for(started.wait(), 5)
        t0 = time.monotonic()
        await asyncio.wait_for(service.stop(), 10)
        assert time.monotonic() - t0 < 5
        assert cancelled.is_set()
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)
