"""Mixed interop: OUR wallet SDK (``wcnotify.wallet.NotifyClient``) and the OFFICIAL @walletconnect/notify-client
(1.4.1, and 0.14.6) as two devices of ONE account, each learning what the other did through our notify server.

Both devices register their own identity key for the same eth key (all apps / ``isLimited: false``) at our
keys server and watch the account's subscriptions at our notify server. Two dapps, A and B, each on a
``localhost:PORT`` domain whose did.json a small HTTP server on 127.0.0.1 serves (the JS client fetches
``http://localhost:PORT/.well-known/did.json``; the Python device resolves it the same way, with the SDK's
default resolver). Then:

1. the JS client subscribes to A: the Python device gets a ``SubscriptionsChanged`` listing it (the topic and
   key the JS client holds) and ``subscriptions()`` has it; a notification from A reaches both devices under
   one ``msg.id`` (Python: ``NotificationReceived``; JS: its ``notify_message`` event, and for 1.4.1
   ``getNotificationHistory``);
2. the Python device narrows A's scope, and later subscribes to A and B: the JS client's
   ``getActiveSubscriptions()`` shows the new scope, then both apps, as it learned them from
   ``wc_notifySubscriptionsChanged`` (its ``notify_subscriptions_changed`` event); a notification from B
   reaches it on the topic it learned that way;
3. the JS client deletes A: the Python device gets a ``SubscriptionsChanged`` without it; the Python device
   deletes B: the JS client no longer lists it.

After each step the notify server's subscriber rows are checked too. Nothing leaves the machine (the Node
side refuses every DNS lookup but localhost), no answer either device got is a JSON-RPC error, and the Python
device rejected nothing. 0.14.6 sends no ``mjv``, which our server reads as "0": it is told of its own
subscribe and delete as well (that is how it learns their outcome); the Python device (mjv "1") never is.

Why the steps come in this order. The JS clients keep every request they RECEIVE in their JSON-RPC history,
so when another device of the account sends ``wc_notifyUpdate``/``wc_notifyDelete`` on a subscription topic
both are on, the JS client also takes the server's answer to it as an answer to itself and applies its
``sbs`` as the account's whole list. That answer carries the view of the requesting key's watcher (every
app, for an all-apps key, as the reference does), so the JS client keeps its other apps; but the answer and
the ``wc_notifySubscriptionsChanged`` that follows may still be applied in either order, so the JS client is
only asked about another app in ways that do not depend on that order.
``test_a_141_client_keeps_its_other_apps_when_it_subscribes_to_another`` pins the answer's view with the JS
client alone (it failed while our answers listed only the one app).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.integration.notify_stack import Dapp, Stack, running_stack
from tests.interop.test_js_notify import DidHost, JsNotifyWallet, enabled, new_eth_key
from wcnotify.notify import store
from wcnotify.protocol.crypto import topic_of
from wcnotify.protocol.did import Account
from wcnotify.storage.tables import watchers
from wcnotify.wallet import (
    EventStream,
    NotificationReceived,
    NotificationRejected,
    NotifyClient,
    Subscription,
    SubscriptionsChanged,
    WalletEvent,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

EVENT_TIMEOUT = 15.0  # the Python device's waits; the JS side's own waits are 15 s per call


@dataclass
class Apps:
    stack: Stack
    a: Dapp
    b: Dapp
    sites: tuple[DidHost, DidHost]

    async def subscriber(self, dapp: Dapp, account: str) -> store.Subscriber | None:
        async with self.stack.notify.service.db.read() as conn:
            project = await store.project_by_public_id(conn, dapp.project_id)
            assert project is not None
            return await store.find_subscriber(conn, project, Account.parse(account))

    async def watcher_keys(self, account: str) -> list[str]:
        async with self.stack.notify.service.db.read() as conn:
            rows = (await conn.execute(select(watchers))).all()
        return sorted(r.did_key for r in rows if r.account == account)


@contextlib.asynccontextmanager
async def two_apps(tmp_path: Path) -> AsyncIterator[Apps]:
    """The stack on SQLite and two dapps on ``localhost:PORT`` domains, each serving its did.json."""
    with DidHost().running() as site_a, DidHost().running() as site_b:
        async with running_stack(f"sqlite:///{tmp_path / 'stack.db'}") as stack:
            dapps = []
            for site in (site_a, site_b):
                dapp = await stack.create_dapp(domain=f"localhost:{site.port}", types=("alerts", "news"))
                r = await stack.http.get(f"{stack.notify_url}/v1/{dapp.project_id}/did.json")
                assert r.status_code == 200, r.text
                site.document = r.json()
                dapps.append(dapp)
            yield Apps(stack, dapps[0], dapps[1], (site_a, site_b))


@pytest.fixture
async def js_device(js_packages: Path) -> AsyncIterator[Callable[[], Any]]:
    """``await js_device()`` starts the Node wallet (one notify-client device); ended after the test."""
    del js_packages  # installs ./js/notify and ./js/notify0146 (or skips/fails with the reason)
    started: list[JsNotifyWallet] = []

    async def start() -> JsNotifyWallet:
        started.append(await JsNotifyWallet.start())
        return started[-1]

    try:
        yield start
    finally:
        for peer in started:
            await peer.close()


async def next_event(stream: EventStream, kind: type[Any], matches: Callable[[Any], bool] = lambda _: True,
                     timeout: float = EVENT_TIMEOUT) -> Any:
    """The first event of ``kind`` that ``matches`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    seen: list[WalletEvent] = []
    while True:
        left = deadline - time.monotonic()
        try:
            event = await stream.next(timeout=max(0.01, left))
        except TimeoutError:
            raise AssertionError(f"no matching {kind.__name__} within {timeout} s; saw {seen!r}") from None
        if isinstance(event, kind) and matches(event):
            return event
        seen.append(event)


def apps_of(subscriptions: tuple[Subscription, ...] | list[Subscription]) -> list[str]:
    return sorted(s.app_domain for s in subscriptions)


def same_subscription(py: Subscription, js: dict[str, Any]) -> None:
    """The Python device's and the JS client's view of one subscription are the same subscription."""
    assert js["topic"] == py.topic == topic_of(py.sym_key)
    assert js["symKey"] == py.sym_key.hex()
    assert js["account"] == py.account
    assert js["metadata"]["appDomain"] == py.app_domain
    assert js["appAuthenticationKey"] == py.app_authentication_key
    assert enabled(js) == sorted(py.scope)
    assert js["relaySubscribed"] is True


async def announced(js: JsNotifyWallet, after: int, apps: list[str], timeout: float = EVENT_TIMEOUT) -> None:
    """The JS client emitted ``notify_subscriptions_changed`` listing exactly ``apps`` (its ``after``-th event
    or later). It emits once every subscription of the change is stored and subscribed at the relay, so this
    can come a little after the subscription itself shows."""
    deadline = time.monotonic() + timeout
    while True:
        seen = [e["apps"] for e in (await js.call("state"))["subscriptionsChanged"][after:]]
        if sorted(apps) in seen:
            return
        assert time.monotonic() < deadline, f"no notify_subscriptions_changed listing {apps}; saw {seen}"
        await asyncio.sleep(0.05)


VERSIONS = [pytest.param("notify", "1.4.1", id="1.4.1"), pytest.param("notify0146", "0.14.6", id="0.14.6")]


@pytest.mark.parametrize(("package", "version"), VERSIONS)
async def test_python_and_js_devices_of_one_account_follow_each_other(
    js_device: Callable[[], Any], tmp_path: Path, package: str, version: str
) -> None:
    legacy = version.startswith("0.")
    async with two_apps(tmp_path) as apps:
        stack, a, b = apps.stack, apps.a, apps.b
        js: JsNotifyWallet = await js_device()
        info = await js.call("init", relayUrl=stack.relay.ws_url, keyserverUrl=stack.keys.url,
                             notifyServerUrl=stack.notify_url, package=package)
        assert info["version"] == version
        assert info["relayUrl"] == stack.relay.ws_url  # no silent fallback to the public relay

        async with NotifyClient(tmp_path / "python-device.db", relay_url=stack.relay.ws_url,
                                keys_server_url=stack.keys.url, notify_server_url=stack.notify_url) as py:
            with py.events() as everything:
                # ---- one eth key, two identity keys, two watchers (all apps)
                private_key, address = new_eth_key()
                registered = await js.call("register", privateKey=private_key, domain=a.domain, allApps=True)
                account = registered["account"]
                assert account == f"eip155:1:{address}"
                assert registered["registered"] is True and registered["watch"]["error"] is None
                await py.register_with_key(account, private_key, a.domain, all_apps=True)
                assert await py.accounts() == [account]
                keys = await apps.watcher_keys(account)
                assert len(keys) == 2 and keys[0] != keys[1]
                assert await py.subscriptions(account) == []

                # ---- 1. JS subscribes to A: the Python device hears of it through its watch
                with py.events() as events:
                    js_a = await js.call("subscribe", account=account, appDomain=a.domain)
                    changed = await next_event(events, SubscriptionsChanged,
                                               lambda e: apps_of(e.subscriptions) == [a.domain])
                assert (changed.account, changed.source) == (account, "watch")
                [py_a] = changed.subscriptions
                same_subscription(py_a, js_a)
                assert sorted(py_a.scope) == sorted(a.types.values())
                assert py_a.app_authentication_key == a.auth_did
                assert await py.subscriptions(account) == [py_a]
                server_a = await apps.subscriber(a, account)
                assert server_a is not None and (server_a.topic, server_a.sym_key) == (py_a.topic, py_a.sym_key.hex())

                # a notification from A reaches both devices, under one msg.id
                with py.events() as events:
                    result = await stack.send(a, [account], "alerts", title="to both", body="from A",
                                              notification_id="a-1")
                    assert result["sent"] == [account], result
                    on_py = (await next_event(events, NotificationReceived)).notification
                [on_js] = await js.call("messages", atLeast=1)
                assert on_js["topic"] == on_py.topic == py_a.topic
                assert (on_js["message"]["id"], on_js["message"]["title"], on_js["message"]["body"]) == (
                    on_py.id, "to both", "from A")
                assert on_py.app_domain == a.domain and on_py.type == a.types["alerts"]
                assert [n.id for n in await py.notifications(a.domain)] == [on_py.id]
                if not legacy:
                    page = await js.call("history", account=account, appDomain=a.domain, limit=10)
                    assert [n["id"] for n in page["notifications"]] == [on_py.id]

                # ---- 2a. Python narrows A to news: the JS client sees the new scope on the same subscription
                changes_before = len((await js.call("state"))["subscriptionsChanged"])
                py_a_news = await py.update(a.domain, ["news"])
                assert py_a_news.topic == py_a.topic and py_a_news.scope == (a.types["news"],)
                js_a_news = await js.call("waitSubscription", account=account, appDomain=a.domain,
                                          scope=[a.types["news"]])
                same_subscription(py_a_news, js_a_news)
                await announced(js, changes_before, [a.domain])  # by wc_notifySubscriptionsChanged
                server_a = await apps.subscriber(a, account)
                assert server_a is not None and list(server_a.scope) == [a.types["news"]]

                # ---- 3a. the JS client deletes A: the Python device hears the account has no subscription left
                with py.events() as events:
                    deleted = await js.call("deleteSubscription", account=account, appDomain=a.domain)
                    assert deleted["active"] == {} and deleted["relaySubscribed"] is False
                    gone = await next_event(events, SubscriptionsChanged, lambda e: e.subscriptions == ())
                assert (gone.account, gone.source) == (account, "watch")
                assert await py.subscriptions(account) == []
                assert py_a.topic not in py.relay.topics  # it stopped listening on the deleted topic
                assert await apps.subscriber(a, account) is None

                # ---- 2b. Python subscribes to A (news) and B (alerts): the JS client's getActiveSubscriptions
                # lists both, learned from wc_notifySubscriptionsChanged alone (the Python device's subscribe
                # answers come on reply topics the JS client does not hear)
                changes_before = len((await js.call("state"))["subscriptionsChanged"])
                py_a2 = await py.subscribe(account, a.domain, ["news"])
                py_b = await py.subscribe(account, b.domain, ["alerts"])
                assert py_a2.topic != py_a.topic  # a new subscription: a new key
                assert (py_a2.scope, py_b.scope) == ((a.types["news"],), (b.types["alerts"],))
                active = await js.call("activeSubscriptions", account=account, apps=[a.domain, b.domain])
                by_app = {s["metadata"]["appDomain"]: s for s in active}
                same_subscription(py_a2, by_app[a.domain])
                same_subscription(py_b, by_app[b.domain])
                await announced(js, changes_before, [a.domain, b.domain])
                for dapp, sub in ((a, py_a2), (b, py_b)):
                    row = await apps.subscriber(dapp, account)
                    assert row is not None and (row.topic, list(row.scope)) == (sub.topic, list(sub.scope))

                # a notification from B reaches the JS client on the topic it learned, and the Python device
                with py.events() as events:
                    result = await stack.send(b, [account], "alerts", title="from B", notification_id="b-1")
                    assert result["sent"] == [account], result
                    on_py_b = (await next_event(events, NotificationReceived)).notification
                received = await js.call("messages", atLeast=2)
                assert [(m["topic"], m["message"]["id"], m["message"]["title"]) for m in received[1:]] == [
                    (py_b.topic, on_py_b.id, "from B")]

                # ---- 3b. Python deletes B: the JS client no longer lists it
                await py.delete(b.domain)
                assert apps_of(await py.subscriptions(account)) == [a.domain]
                assert await js.call("waitSubscription", account=account, appDomain=b.domain, present=False) is None
                assert await apps.subscriber(b, account) is None
                assert await apps.subscriber(a, account) is not None
                # (whether the JS client still lists A here is not checked: see the module's docstring)

                # ---- nothing odd on either side
                rejected = []
                while True:
                    try:
                        event = await everything.next(timeout=0.01)
                    except TimeoutError:
                        break
                    if isinstance(event, NotificationRejected):
                        rejected.append(event)
                assert rejected == []

        state = await js.call("state")
        assert state["externalLookups"] == []
        assert state["relayUrl"] == stack.relay.ws_url
        errors = [r for r in state["responses"] if r["error"] is not None]
        assert errors == [], errors
        for site in apps.sites:
            assert site.requests and set(site.requests) == {"/.well-known/did.json"}
        changed_requests = [r["method"] for r in state["requests"]].count("wc_notifySubscriptionsChanged")
        # told of the Python device's update of A, subscribes to A and B and delete of B; 0.14.6 (no mjv, so "0")
        # also of its own subscribe to A and delete of A
        assert changed_requests == (6 if legacy else 4), state["requests"]


async def test_a_141_client_keeps_its_other_apps_when_it_subscribes_to_another(
    js_device: Callable[[], Any], tmp_path: Path
) -> None:
    """One notify-client 1.4.1 (all apps) subscribes to A, then to B: it should hold both."""
    async with two_apps(tmp_path) as apps:
        js: JsNotifyWallet = await js_device()
        await js.call("init", relayUrl=apps.stack.relay.ws_url, keyserverUrl=apps.stack.keys.url,
                      notifyServerUrl=apps.stack.notify_url, package="notify")
        private_key, _ = new_eth_key()
        account = (await js.call("register", privateKey=private_key, domain=apps.a.domain, allApps=True))["account"]
        await js.call("subscribe", account=account, appDomain=apps.a.domain)
        await js.call("subscribe", account=account, appDomain=apps.b.domain)
        assert await apps.subscriber(apps.a, account) is not None  # the server still has A
        await js.call("activeSubscriptions", account=account, apps=[apps.a.domain, apps.b.domain], timeoutMs=3000)
