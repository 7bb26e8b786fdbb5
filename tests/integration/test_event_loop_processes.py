"""Every service command runs on the loop ``wcnotify.event_loop`` picks: uvloop by default,
``WCNOTIFY_EVENT_LOOP=asyncio`` on request. The relay's traffic (a WebSocket subscribe, an HTTP publish, the
push and its ack, a batch) goes through a real ``wcnotify relay`` process on each, since the relay's own
WebSocket protocol (relay/ws_protocol.py) talks to the loop's transports directly. A bad value stops the
command with a message, before it serves anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from wcnotify.relay.client import RelayHttpClient
from wcnotify.relay.testing import RawRelayPeer, random_topic

from .test_relay_durability import WCNOTIFY, RelayProcess, free_port


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_relay_process_serves_on_each_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop: str) -> None:
    monkeypatch.setenv("WCNOTIFY_EVENT_LOOP", loop)  # the relay process inherits it
    relay = RelayProcess(free_port(), tmp_path / "relay.db", tmp_path / "relay.key")
    relay.start()
    try:
        health = httpx.get(relay.http_url + "/health", trust_env=False).json()
        assert health["eventLoop"] == loop
        topic = random_topic()
        async with await RawRelayPeer.open(relay.ws_url) as wallet:
            await wallet.call("irn_subscribe", {"topic": topic})
            async with RelayHttpClient(relay.http_url) as server:
                await server.publish(topic, "over http", ttl=600, tag=4002)
            async with await RawRelayPeer.open(relay.ws_url) as peer:
                await peer.call("irn_batchPublish", {"messages": [
                    {"topic": topic, "message": f"batch-{i}", "ttl": 600, "tag": 1} for i in range(3)]})
            pushes = [await wallet.push() for _ in range(4)]
            assert [p["params"]["data"]["message"] for p in pushes] == ["over http", "batch-0", "batch-1", "batch-2"]
            for push in pushes:
                await wallet.ack(push)
            assert await wallet.no_push()
    finally:
        relay.stop()
    assert relay.proc is not None and relay.proc.stdout is not None
    assert f"event loop: {loop})" in relay.proc.stdout.read().decode()


@pytest.mark.parametrize("command", [["relay", "--port", "0"], ["keys", "--port", "0"], ["up", "--json"]])
def test_a_loop_that_does_not_exist_is_refused(tmp_path: Path, command: list[str]) -> None:
    """Checked once by the ``wcnotify`` entry point, before any command starts: nothing is served or written."""
    done = subprocess.run(
        [WCNOTIFY, *command], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "WCNOTIFY_EVENT_LOOP": "trio"}, check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "WCNOTIFY_EVENT_LOOP must be 'uvloop' or 'asyncio', not 'trio'" in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []  # no database, no data dir
