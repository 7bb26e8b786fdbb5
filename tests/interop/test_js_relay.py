"""The OFFICIAL JS relayers (``@walletconnect/core`` 2.25.0, and 2.12.2 as pinned by notify-client 1.4.1)
against our relay on loopback: connect with their own auth, subscribe, publish, receive, store-and-forward,
reconnect and re-subscribe after a relay restart (the SQLite mailbox keeps what was published meanwhile),
and exchange messages both ways with the Python RelayClient.

Each test starts one Node process (``js/relay_peer.mjs``) holding two Core instances with separate
in-memory storage (so two relay client keys), drives it line by line, and bounds every wait. The peer
refuses DNS lookups of any name but localhost and reports them: a Core that silently fell back to
``wss://relay.walletconnect.org`` fails ``assert_local``. ``RELAY_PEER_LOG=debug`` shows the relayers' own
logs in a failure's message.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.interop.conftest import JsPeerError
from tests.interop.line_peer import LinePeer
from wcnotify.relay.client import RelayClient, RelayHttpClient
from wcnotify.relay.server import RelayConfig, RelayServer
from wcnotify.relay.testing import random_topic

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

RELAY_PEER = Path(__file__).parent / "js" / "relay_peer.mjs"
CALL_TIMEOUT = 20.0  # per request; the peer's own waits are shorter, so its error message arrives first
LINES = {"current": "2.25.0", "legacy": "2.12.2"}
PREFIX = "@@relay-peer "


class JsRelayPeer(LinePeer):
    """Two JS Core relayers (current and legacy) in one ``node relay_peer.mjs`` process."""

    PREFIX = PREFIX
    SCRIPT = RELAY_PEER
    WATCHDOG_ENV = "RELAY_PEER_WATCHDOG_MS"
    WATCHDOG_MS = "55000"
    CALL_TIMEOUT = CALL_TIMEOUT

    async def assert_local(self, name: str, url: str) -> None:
        """No silent fallback: the relayer still points at our relay and nothing tried a public name."""
        state = await self.call("state", name=name)
        assert state["relayUrl"] == url
        assert state["externalLookups"] == []


@pytest.fixture
async def js(js_packages: Path) -> AsyncIterator[JsRelayPeer]:
    peer = await JsRelayPeer.start()
    try:
        yield peer
    finally:
        await peer.close()


async def init_pair(js: JsRelayPeer, line: str, url: str) -> None:
    for name in ("a", "b"):
        info = await js.call("init", name=name, line=line, relayUrl=url)
        assert info["version"] == LINES[line]
        assert info["relayUrl"] == url
        assert info["clientId"].startswith("did:key:z6Mk")


def assert_received(line: str, got: list[str], expected: list[str]) -> None:
    """Each message once; in publish order for core 2.25.

    The relay sends in mailbox order (tests/integration/test_relay.py checks the frames). Core 2.12.2 may
    emit a backlog reordered: a push that arrives before its subscribe call has settled waits in a 20 ms
    poll (``subscriber.isSubscribed``) while one that arrives just after is emitted at once.
    """
    if line == "current":
        assert got == expected
    else:
        assert sorted(got) == sorted(expected)


@pytest.mark.parametrize("line", list(LINES))
async def test_js_relayers_pub_sub_and_python_client_both_ways(js: JsRelayPeer, line: str) -> None:
    async with RelayServer(RelayConfig(port=0)) as relay:
        url = relay.ws_url
        await init_pair(js, line, url)
        t_a, t_b, t_py, t_late = (random_topic() for _ in range(4))
        received: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        async with RelayClient(url, on_message=lambda m: received.put_nowait((m.topic, m.message))) as py:
            sub_a = await js.call("subscribe", name="a", topic=t_a)
            assert isinstance(sub_a, str) and sub_a
            await js.call("subscribe", name="b", topic=t_b)
            await py.subscribe(t_py)

            # JS -> JS, both directions
            await js.call("publish", name="b", topic=t_a, message="b-to-a", ttl=300, tag=1100)
            await js.call("publish", name="a", topic=t_b, message="a-to-b", ttl=300, tag=1100)
            assert await js.call("waitMessages", name="a", topic=t_a, messages=["b-to-a"]) == ["b-to-a"]
            assert await js.call("waitMessages", name="b", topic=t_b, messages=["a-to-b"]) == ["a-to-b"]

            # JS -> Python and Python -> JS
            await js.call("publish", name="a", topic=t_py, message="js-to-py", ttl=300, tag=4002)
            assert await asyncio.wait_for(received.get(), 10) == (t_py, "js-to-py")
            await py.publish(t_a, "py-to-js", ttl=300, tag=4002)
            assert await js.call("waitMessages", name="a", topic=t_a, messages=["py-to-js"]) == ["b-to-a", "py-to-js"]

            # store and forward: published (by Python) before the JS client subscribed
            await py.publish(t_late, "early-1", ttl=300, tag=1)
            await py.publish(t_late, "early-2", ttl=300, tag=1)
            await js.call("subscribe", name="b", topic=t_late)
            got = await js.call("waitMessages", name="b", topic=t_late, messages=["early-1", "early-2"])
            assert_received(line, got, ["early-1", "early-2"])

            # nobody got a copy of their own message, and nothing else arrived
            state_a, state_b = await js.call("state", name="a"), await js.call("state", name="b")
            assert {m["topic"] for m in state_a["received"]} == {t_a}
            assert {m["topic"] for m in state_b["received"]} == {t_b, t_late}
            assert received.empty()
        for name in ("a", "b"):
            assert (await js.call("state", name=name))["connected"]
            await js.assert_local(name, url)


@pytest.mark.parametrize("line", list(LINES))
async def test_js_relayers_reconnect_after_relay_restart_and_get_what_they_missed(
    js: JsRelayPeer, line: str, tmp_path: Path
) -> None:
    """The relay stops and a new one starts on the same port with the same SQLite mailbox (and key).

    ``a`` goes offline on purpose (``transportClose``) before the restart, misses a message, comes back after
    it and gets that message from the mailbox. ``b`` stays online and is cut off by the restart: it
    reconnects and re-subscribes on its own and gets what Python published while it was reconnecting.
    (Core 2.12.2 retries once, 1 s after the drop, so the new relay is up well before that.)
    """
    database_url = f"sqlite:///{tmp_path / 'relay.db'}"
    seed = os.urandom(32)
    first = RelayServer(RelayConfig(port=0, database_url=database_url, key_seed=seed))
    await first.start()
    port, url = first.port, first.ws_url
    t_a, t_b = random_topic(), random_topic()
    try:
        await init_pair(js, line, url)
        await js.call("subscribe", name="a", topic=t_a)
        await js.call("subscribe", name="b", topic=t_b)
        await js.call("publish", name="b", topic=t_a, message="before", ttl=300, tag=1100)
        await js.call("waitMessages", name="a", topic=t_a, messages=["before"])

        await js.call("transportClose", name="a")
        await js.call("waitConnected", name="a", connected=False)
        await js.call("publish", name="b", topic=t_a, message="while-a-was-away", ttl=300, tag=1100)
    finally:
        await first.stop()

    second = RelayServer(RelayConfig(port=port, database_url=database_url, key_seed=seed))
    await second.start()
    try:
        assert second.relay.key.public_key == first.relay.key.public_key
        async with RelayHttpClient(second.http_url) as http:
            await http.publish(t_b, "during-b-reconnect", ttl=300, tag=1100)
        # b reconnects and re-subscribes by itself
        state_b = await js.call("waitConnected", name="b", connected=True)
        assert state_b["connects"] >= 2  # it was cut off by the restart, not left connected
        assert await js.call("waitMessages", name="b", topic=t_b, messages=["during-b-reconnect"]) == [
            "during-b-reconnect"
        ]
        # a comes back: re-subscribes its topic and gets what it missed from the SQLite mailbox, once
        await js.call("transportOpen", name="a")
        await js.call("waitConnected", name="a", connected=True)
        await js.call("publish", name="b", topic=t_a, message="after-restart", ttl=300, tag=1100)
        got = await js.call("waitMessages", name="a", topic=t_a, messages=["while-a-was-away", "after-restart"])
        assert_received(line, got, ["before", "while-a-was-away", "after-restart"])
        for name in ("a", "b"):
            await js.assert_local(name, url)
    finally:
        await second.stop()


async def test_the_loopback_guard_catches_core_2_12_falling_back_to_the_public_relay(
    js: JsRelayPeer, unused_tcp_port: int
) -> None:
    """What ``assert_local`` protects against: core 2.12.2 refused at init switches to the public relay."""
    url = f"ws://127.0.0.1:{unused_tcp_port}"
    with pytest.raises(JsPeerError, match=r"blocked DNS lookup of relay\.walletconnect\.org"):
        await js.call("init", name="x", line="legacy", relayUrl=url)
    state = await js.call("state", name="x")
    assert state["relayUrl"] == "wss://relay.walletconnect.org"
    assert state["externalLookups"] == ["relay.walletconnect.org"]
