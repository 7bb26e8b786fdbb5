"""Which event loop a wcnotify process runs on: uvloop (a pinned dependency) unless WCNOTIFY_EVENT_LOOP says
asyncio; a value naming no loop is refused with a message, not run on some default."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest
import uvloop

from wcnotify import event_loop


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.ENV_VAR, raising=False)
    assert event_loop.loop_name() == "uvloop"
    assert isinstance(event_loop.run(_running_loop()), uvloop.Loop)


@pytest.mark.parametrize("value", ["asyncio", " AsyncIO "])
def test_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(event_loop.ENV_VAR, value)
    assert event_loop.loop_name() == "asyncio"
    loop = event_loop.run(_running_loop())
    assert isinstance(loop, asyncio.BaseEventLoop) and not isinstance(loop, uvloop.Loop)


def test_a_name_of_no_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV_VAR, "trio")
    with pytest.raises(event_loop.EventLoopChoiceError, match="must be 'uvloop' or 'asyncio', not 'trio'"):
        event_loop.loop_name()


def test_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where uvloop has no build (Windows), the default is asyncio's loop; asking for uvloop is an error."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a))
    monkeypatch.delenv(event_loop.ENV_VAR, raising=False)
    assert event_loop.loop_name() == "asyncio"
    monkeypatch.setenv(event_loop.ENV_VAR, "uvloop")
    with pytest.raises(event_loop.EventLoopChoiceError, match="not installed"):
        event_loop.loop_name()


def test_run_returns_the_result_and_raises_the_error() -> None:
    async def boom() -> None:
        raise LookupError("inside")

    async def value() -> int:
        return 42

    assert event_loop.run(value()) == 42
    with pytest.raises(LookupError, match="inside"):
        event_loop.run(boom())
