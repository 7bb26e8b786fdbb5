"""The event loop every wcnotify process runs on: uvloop where it is installed, asyncio's own otherwise.

Why uvloop: a relay or notify server under load spends most of its CPU in the loop's socket path, one
``send`` per connection for every routed message and one ``recv`` per ack, which asyncio's selector loop
runs in Python and uvloop runs in C (libuv). The fan-out and relay benches measure the difference
(docs/performance.md). uvloop has no Windows build, so it is an optional speed-up, never a requirement:
``WCNOTIFY_EVENT_LOOP=asyncio`` picks asyncio's loop anyway (to compare the two, or to rule the loop out
when chasing a bug).

Tests run the services inside pytest's own asyncio loop; the CLI, ``wcnotify up`` and every service
process started as a command run on the loop chosen here, so both loops are exercised.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

ENV_VAR = "WCNOTIFY_EVENT_LOOP"


class EventLoopChoiceError(ValueError):
    """``WCNOTIFY_EVENT_LOOP`` names no loop, or one that is not installed (commands print it, no traceback)."""


def loop_name() -> Literal["uvloop", "asyncio"]:
    """``uvloop`` when it is installed and not overridden by ``WCNOTIFY_EVENT_LOOP=asyncio``."""
    wanted = os.environ.get(ENV_VAR, "").strip().lower()
    if wanted not in ("", "uvloop", "asyncio"):
        raise EventLoopChoiceError(f"{ENV_VAR} must be 'uvloop' or 'asyncio', not {wanted!r}")
    if wanted == "asyncio" or importlib.util.find_spec("uvloop") is None:
        if wanted == "uvloop":
            raise EventLoopChoiceError(f"{ENV_VAR}=uvloop, but uvloop is not installed")
        return "asyncio"
    return "uvloop"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """A function making a new loop of the chosen kind (for :class:`asyncio.Runner`)."""
    if loop_name() == "uvloop":
        import uvloop  # noqa: PLC0415 (optional: no Windows build)

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """:func:`asyncio.run` on the chosen loop (Ctrl-C, cleanup and shutdown of async generators as there)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
