"""Run an async service on its own event loop in a thread, for synchronous (Hypothesis) tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def in_thread(service: contextlib.AbstractAsyncContextManager[T]) -> Iterator[tuple[T, asyncio.AbstractEventLoop]]:
    """Enter ``service`` on a fresh loop in a daemon thread; yield what it gives and that loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        holder["stop"] = asyncio.Event()
        try:
            async with service as value:
                holder["value"] = value
                ready.set()
                await holder["stop"].wait()
        finally:
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(60)
    try:
        assert "value" in holder, "the service did not start"
        yield holder["value"], loop
    finally:
        if "stop" in holder:
            loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(30)
        loop.close()
