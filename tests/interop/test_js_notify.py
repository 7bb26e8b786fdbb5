"""The OFFICIAL wallet SDK, @walletconnect/notify-client 1.4.1 and 0.14.6, against our whole stack on loopback.

Each test runs the relay, keys server and notify server in-process (``running_stack``, SQLite in
``tmp_path``) and creates a dapp whose app domain is ``localhost:PORT``: PORT is a small HTTP server the
test runs on 127.0.0.1, serving at ``/.well-known/did.json`` the did.json our notify server generated
for the project (the client fetches ``http://localhost:PORT/.well-known/did.json``). Each Node process
(``js/notify_wallet.mjs``) is one device, driving the client as a wallet does:

1. register: 1.4.1 ``prepareRegistration`` + an EIP-191 signature (ethers v5) + ``register``; 0.14.6
   ``register({onSign})``. The client POSTs the CACAO to our keys server, then sends
   ``wc_notifyWatchSubscription`` to our notify server (whose did.json it fetches from
   ``client.notifyServerUrl``, pointed at ours). Both an all-apps and a this-app CACAO (whose watch names
   ``app: "did:web:localhost:PORT"``, raw colon);
2. ``subscribe``: fetches the dapp's did.json and notify config (the explorer URL is rewritten to our
   server's ``/w3i/v1/notify-config``, so the scope holds our type ids), sends ``wc_notifySubscribe`` and
   ends with an active subscription for the app;
3. the dapp sends with ``POST /v1/{projectId}/notify``; the client emits ``notify_message`` and answers
   each ``wc_notifyMessage`` with a ``notify_message_response`` signed by its identity key;
4. 1.4.1 only: ``getNotificationHistory`` (pages, unread first or not), ``markNotificationsAsRead`` and
   ``markAllNotificationsAsRead``;
5. ``update`` to one type (a notification of another type is then refused by the server and never
   reaches the client), then ``deleteSubscription`` (a send then finds nobody).

After each step the test reads our side: the keys server's ``GET /identity``, the notify server's
subscriber row and scope (the client's symKey and topic must be the stored ones), the watchers, the
delivery status (``GET /v1/{projectId}/notifications/{id}``), the inbox rows' read state, and what the
relay holds on the subscription topic (each message verifies against the dapp's key, each answer against
the client's identity key). Another test runs two devices of one account and checks that each learns
what the other did from ``wc_notifySubscriptionsChanged``. Nothing leaves the machine: the Node side
refuses every DNS lookup but localhost and reports any, and every answer the client got must be a
result, not a JSON-RPC error.

How 0.14.6 differs (its protocol predates these parts): its JWTs carry no ``mjv``, so our server treats
it as mjv "0" and sends ``wc_notifySubscriptionsChanged`` to the device that acted too; it does not wait
for the answers to subscribe, update and delete, and learns their outcome only from that
``wc_notifySubscriptionsChanged``; and it has no server-side history or read state
(``wc_notifyGetNotifications``/``wc_notifyMarkNotificationsAsRead`` came with 1.x), only its own store
of the messages it received, so on the server every notification stays unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account as EthAccount
from sqlalchemy import select

from tests.integration.notify_stack import Dapp, Stack, running_stack, unread_ids
from tests.interop.line_peer import LinePeer
from wcnotify import spec
from wcnotify.notify import store
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.crypto import decrypt, topic_of
from wcnotify.protocol.did import Account, did_web, encode_did_key
from wcnotify.protocol.jwt import decode_jwt, verify_jwt
from wcnotify.relay.client import RelayClient
from wcnotify.storage.tables import notifications, subscriber_notifications, subscribers, watchers

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

WALLET = Path(__file__).parent / "js" / "notify_wallet.mjs"
PREFIX = "@@notify-wallet "
CALL_TIMEOUT = 25.0  # per request; the peer's own waits (15 s) are shorter, so its error arrives first


class JsNotifyWallet(LinePeer):
    """One ``node notify_wallet.mjs`` process: one wallet device running notify-client 1.4.1."""

    PREFIX = PREFIX
    SCRIPT = WALLET
    WATCHDOG_ENV = "NOTIFY_WALLET_WATCHDOG_MS"
    WATCHDOG_MS = "85000"
    CALL_TIMEOUT = CALL_TIMEOUT

    async def diagnostics(self) -> str:
        """What the client received (responses, with any JSON-RPC error) and its stderr, for failures."""
        state: Any = "?"
        with contextlib.suppress(Exception):
            state = (await self.request("state", 5))["value"]
        return f"--- client state ---\n{json.dumps(state, indent=1)[-6000:]}\n{await super().diagnostics()}"


WalletFactory = Callable[[], Awaitable[JsNotifyWallet]]


@pytest.fixture
async def start_wallet(js_packages: Path) -> AsyncIterator[WalletFactory]:
    """``await start_wallet()`` starts one more Node wallet (one device); all are ended after the test."""
    del js_packages  # installs ./js/notify (or skips/fails with the reason)
    started: list[JsNotifyWallet] = []

    async def start() -> JsNotifyWallet:
        started.append(await JsNotifyWallet.start())
        return started[-1]

    try:
        yield start
    finally:
        for peer in started:
            await peer.close()


class DidHost:
    """The dapp's web server: ``GET /.well-known/did.json`` on 127.0.0.1 (the client asks for localhost)."""

    def __init__(self) -> None:
        self.document: dict[str, Any] | None = None
        self.requests: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                if self.path != "/.well-known/did.json" or host.document is None:
                    self.send_error(404)
                    return
                body = json.dumps(host.document).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="did-host", daemon=True)

    @contextlib.contextmanager
    def running(self) -> Iterator[DidHost]:
        self.thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)


@dataclass
class RelayLog:
    """The subscription topic as the relay holds it (``Scene.relay_log``), by JSON-RPC id."""

    sent: dict[Any, dict[str, Any]] = field(default_factory=dict)  # wc_notifyMessage: messageAuth claims
    answers: dict[Any, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # (tag, responseAuth claims)
    errors: list[jsonrpc.Error] = field(default_factory=list)  # JSON-RPC errors anyone sent there


@dataclass(frozen=True)
class Inboxed:
    """One row of a subscriber's inbox (``subscriber_notifications``)."""

    id: str  # the msg.id the wallet sees
    is_read: bool
    status: str
    created_at: int


@dataclass
class Scene:
    """The stack, a dapp on ``localhost:PORT`` whose did.json the site serves, and its types from notify-config."""

    stack: Stack
    site: DidHost
    dapp: Dapp
    config_types: dict[str, str]  # id -> name, as /w3i/v1/notify-config answers
    database_url: str

    @property
    def domain(self) -> str:
        return self.dapp.domain

    async def init(self, wallet: JsNotifyWallet, package: str = "notify") -> dict[str, Any]:
        info: dict[str, Any] = await wallet.call(
            "init", relayUrl=self.stack.relay.ws_url, keyserverUrl=self.stack.keys.url,
            notifyServerUrl=self.stack.notify_url, package=package,
        )
        assert info["relayUrl"] == self.stack.relay.ws_url  # no silent fallback to the public relay
        return info

    async def subscriber(self, account: str) -> store.Subscriber | None:
        async with self.stack.notify.service.db.read() as conn:
            project = await store.project_by_public_id(conn, self.dapp.project_id)
            assert project is not None
            return await store.find_subscriber(conn, project, Account.parse(account))

    async def watchers(self) -> list[Any]:
        async with self.stack.notify.service.db.read() as conn:
            return list((await conn.execute(select(watchers).order_by(watchers.c.updated_at))).all())

    async def send_v1(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /v1/{projectId}/notify`` with several ``{notification_id, notification, accounts}``."""
        r = await self.stack.http.post(f"{self.stack.notify_url}/v1/{self.dapp.project_id}/notify", json=items,
                                       headers=self.dapp.headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def inbox(self, sym_key: str) -> dict[str, Inboxed]:
        """The subscriber's inbox rows (what ``msg.id`` names) by the dapp's notification_id."""
        sn = subscriber_notifications
        async with self.stack.notify.service.db.read() as conn:
            rows = await conn.execute(
                select(sn.c.id, sn.c.is_read, sn.c.status, sn.c.created_at, notifications.c.notification_id)
                .join(notifications, notifications.c.id == sn.c.notification)
                .join(subscribers, subscribers.c.id == sn.c.subscriber)
                .where(subscribers.c.topic == topic_of(bytes.fromhex(sym_key)))
            )
            return {r.notification_id: Inboxed(r.id, r.is_read, r.status, r.created_at) for r in rows}

    async def relay_log(self, sym_key: str) -> RelayLog:
        """What the relay holds on the subscription topic, decrypted; a fresh relay client fetches the
        topic's mailbox. Each ``wc_notifyMessage`` must verify against the dapp's key and each
        ``notify_message_response`` against the key that signed it (its ``iss``)."""
        key = bytes.fromhex(sym_key)
        now = int(time.time())
        log = RelayLog()
        async with RelayClient(self.stack.relay.ws_url) as observer:
            more = True
            while more:
                page, more = await observer.fetch_messages(topic_of(key))
                for m in page:
                    payload = jsonrpc.parse_message(decrypt(m.message, key))
                    if isinstance(payload, jsonrpc.Request) and payload.method == spec.NOTIFY_MESSAGE.method:
                        claims = verify_jwt(payload.params["messageAuth"], now=now, act=spec.Act.NOTIFY_MESSAGE)
                        assert claims["iss"] == self.dapp.auth_did
                        log.sent[payload.id] = claims
                    elif isinstance(payload, jsonrpc.Error):
                        log.errors.append(payload)
                    elif isinstance(payload, jsonrpc.Result) and isinstance(payload.result, dict):
                        token = payload.result.get("responseAuth")
                        if token and decode_jwt(token).claims.get("act") == spec.Act.NOTIFY_MESSAGE_RESPONSE:
                            log.answers[payload.id] = (m.tag, verify_jwt(token, now=now, aud=self.dapp.auth_did))
        return log

    async def assert_identity(self, registered: dict[str, Any]) -> str:
        """The keys server holds the client's identity key for its account; returns its did:key."""
        identity_did = encode_did_key(bytes.fromhex(registered["identityKey"]))
        r = await self.stack.http.get(f"{self.stack.keys.url}/identity", params={"publicKey": did_key_id(identity_did)})
        assert r.status_code == 200, r.text
        cacao = r.json()["value"]["cacao"]
        assert cacao["p"]["iss"] == f"did:pkh:{registered['account']}"
        assert cacao["p"]["aud"] == identity_did
        assert cacao["p"]["domain"] == self.domain
        assert cacao["p"]["resources"] == [self.stack.keys.url]
        assert registered["registered"] is True
        assert registered["watch"]["error"] is None  # a notify_watch_subscriptions_response, not an error
        return identity_did

    async def assert_local(self, wallet: JsNotifyWallet) -> None:
        """Nothing left the machine, the client fetched what we served, and no answer was an error."""
        state = await wallet.call("state")
        assert state["externalLookups"] == []
        assert state["relayUrl"] == self.stack.relay.ws_url
        assert self.site.requests and set(self.site.requests) == {"/.well-known/did.json"}
        notify_config = f"{self.stack.notify_url}/w3i/v1/notify-config?"
        assert all(u.startswith(notify_config) for u in state["explorerRequests"])
        errors = [r for r in state["responses"] if r["error"] is not None]
        assert errors == [], errors


def did_key_id(did: str) -> str:
    return did.removeprefix("did:key:")


@contextlib.asynccontextmanager
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    database_url = f"sqlite:///{tmp_path / 'stack.db'}"
    with DidHost().running() as site:
        async with running_stack(database_url) as stack:
            dapp = await stack.create_dapp(domain=f"localhost:{site.port}", types=("alerts", "news", "promotions"))
            r = await stack.http.get(f"{stack.notify_url}/v1/{dapp.project_id}/did.json")
            assert r.status_code == 200, r.text
            site.document = r.json()
            r = await stack.http.get(f"{stack.notify_url}/w3i/v1/notify-config", params={"appDomain": dapp.domain})
            assert r.status_code == 200, r.text
            config_types = {t["id"]: t["name"] for t in r.json()["data"]["notificationTypes"]}
            assert config_types == {v: k for k, v in dapp.types.items()}
            yield Scene(stack, site, dapp, config_types, database_url)


def new_eth_key() -> tuple[str, str]:
    key = EthAccount.create()
    return "0x" + bytes(key.key).hex(), key.address


@pytest.mark.parametrize("all_apps", [True, False], ids=["all-apps", "this-app"])
async def test_notify_client_registers_watches_subscribes_updates_and_deletes(
    start_wallet: WalletFactory, tmp_path: Path, all_apps: bool
) -> None:
    async with scene(tmp_path) as sc:
        wallet = await start_wallet()
        await sc.init(wallet)
        all_types = sorted(sc.dapp.types.values())

        # ---- register: identity at our keys server, then watch at our notify server
        private_key, address = new_eth_key()
        registered = await wallet.call("register", privateKey=private_key, domain=sc.domain, allApps=all_apps)
        account = registered["account"]
        assert account == f"eip155:1:{address}"
        identity_did = await sc.assert_identity(registered)
        [watcher] = await sc.watchers()
        assert watcher.account == account
        assert did_key_id(identity_did) in watcher.did_key
        # an all-apps watch names no app (project NULL); a this-app watch names did:web:localhost:PORT
        assert (watcher.project is None) is all_apps

        # ---- subscribe: the client's scope is every type id our notify-config gave it
        sub = await wallet.call("subscribe", account=account, appDomain=sc.domain)
        assert sub["account"] == account
        assert sub["metadata"]["appDomain"] == sc.domain
        assert sub["relaySubscribed"] is True
        assert sub["appAuthenticationKey"] == sc.dapp.auth_did
        assert {t: e["name"] for t, e in sub["scope"].items()} == sc.config_types
        assert all(e["enabled"] for e in sub["scope"].values())
        subscriber = await sc.subscriber(account)
        assert subscriber is not None
        assert sorted(subscriber.scope) == all_types
        assert sub["symKey"] == subscriber.sym_key
        assert sub["topic"] == subscriber.topic == topic_of(bytes.fromhex(subscriber.sym_key))

        # ---- update the scope to one type
        alerts = sc.dapp.types["alerts"]
        updated = await wallet.call("update", account=account, appDomain=sc.domain, scope=[alerts])
        assert {t for t, e in updated["scope"].items() if e["enabled"]} == {alerts}
        after_update = await sc.subscriber(account)
        assert after_update is not None
        assert list(after_update.scope) == [alerts]
        assert after_update.sym_key == subscriber.sym_key  # same subscription, same key

        # ---- delete
        deleted = await wallet.call("deleteSubscription", account=account, appDomain=sc.domain)
        assert deleted["active"] == {}
        assert deleted["relaySubscribed"] is False
        assert await sc.subscriber(account) is None

        await sc.assert_local(wallet)


async def test_a_second_device_learns_the_subscription_from_subscriptions_changed(
    start_wallet: WalletFactory, tmp_path: Path
) -> None:
    """Two notify-clients of one account (two identity keys, both watching): what one does, the notify server
    tells the other with ``wc_notifySubscriptionsChanged`` (mjv "1": never the device that acted)."""
    async with scene(tmp_path) as sc:
        phone, laptop = await start_wallet(), await start_wallet()
        await sc.init(phone)
        await sc.init(laptop)
        private_key, _ = new_eth_key()
        on_phone = await phone.call("register", privateKey=private_key, domain=sc.domain, allApps=True)
        on_laptop = await laptop.call("register", privateKey=private_key, domain=sc.domain, allApps=False)
        account = on_phone["account"]
        assert on_laptop["account"] == account
        phone_did, laptop_did = await sc.assert_identity(on_phone), await sc.assert_identity(on_laptop)
        assert phone_did != laptop_did
        assert len(await sc.watchers()) == 2

        sub = await phone.call("subscribe", account=account, appDomain=sc.domain)
        seen = await laptop.call("waitSubscription", account=account, appDomain=sc.domain)
        for key in ("topic", "symKey", "account", "appAuthenticationKey"):
            assert seen[key] == sub[key], key
        assert seen["relaySubscribed"] is True
        assert {t for t, e in seen["scope"].items() if e["enabled"]} == set(sc.dapp.types.values())

        news = sc.dapp.types["news"]
        await laptop.call("update", account=account, appDomain=sc.domain, scope=[news])
        subscriber = await sc.subscriber(account)
        assert subscriber is not None
        assert list(subscriber.scope) == [news]

        await laptop.call("deleteSubscription", account=account, appDomain=sc.domain)
        assert await phone.call("waitSubscription", account=account, appDomain=sc.domain, present=False) is None
        assert await sc.subscriber(account) is None

        phone_state, laptop_state = await phone.call("state"), await laptop.call("state")
        # the phone heard of the update and the delete by 4012; the laptop of the phone's subscribe
        assert [r["method"] for r in phone_state["requests"]].count("wc_notifySubscriptionsChanged") >= 2
        assert [r["method"] for r in laptop_state["requests"]].count("wc_notifySubscriptionsChanged") >= 1
        for wallet in (phone, laptop):
            await sc.assert_local(wallet)


def enabled(sub: dict[str, Any]) -> list[str]:
    """The type ids a client-side subscription has enabled, sorted."""
    return sorted(t for t, e in sub["scope"].items() if e["enabled"])


async def assert_answered(sc: Scene, sym_key: str, received: list[dict[str, Any]], identity_did: str,
                          account: str, *, mjv: str | None) -> None:
    """On the relay, every ``wc_notifyMessage`` the client got (by JSON-RPC id and ``msg.id``) has its
    ``notify_message_response`` (tag 4003), signed by the client's identity key, for this account and app."""
    want = {m["id"]: m["message"]["id"] for m in received}
    assert len(want) == len(received), "two notifications under one JSON-RPC id"
    deadline = time.monotonic() + 10
    while True:
        log = await sc.relay_log(sym_key)
        if set(log.answers) >= set(want) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert log.errors == []
    assert {rid: claims["msg"]["id"] for rid, claims in log.sent.items()} == want
    assert set(log.answers) == set(want)
    for tag, claims in log.answers.values():
        assert tag == spec.NOTIFY_MESSAGE.response_tag
        assert claims["iss"] == identity_did
        assert claims["sub"] == Account.parse(account).did_pkh
        assert claims["app"] == did_web(sc.domain)
        assert claims["ksu"] == sc.stack.keys.url
        assert claims.get("mjv") == mjv


def item(notification_id: str, notification: dict[str, str], *accounts: str) -> dict[str, Any]:
    """One element of a ``POST /v1/{projectId}/notify`` body."""
    return {"notification_id": notification_id, "notification": notification, "accounts": list(accounts)}


VERSIONS = [pytest.param("notify", "1.4.1", id="1.4.1"), pytest.param("notify0146", "0.14.6", id="0.14.6")]


@pytest.mark.parametrize(("package", "version"), VERSIONS)
async def test_notify_client_end_to_end(
    start_wallet: WalletFactory, tmp_path: Path, package: str, version: str
) -> None:
    """Register, watch, subscribe, receive what ``POST /v1/{projectId}/notify`` sent, read the history and
    mark it read (1.4.1), update the scope, delete: each step checked in the client and in our servers."""
    legacy = version.startswith("0.")
    async with scene(tmp_path) as sc:
        wallet = await start_wallet()
        info = await sc.init(wallet, package)
        assert info["version"] == version
        alerts, news, promotions = (sc.dapp.types[name] for name in ("alerts", "news", "promotions"))

        # ---- register: identity at our keys server, then watch (all apps) at our notify server
        private_key, address = new_eth_key()
        registered = await wallet.call("register", privateKey=private_key, domain=sc.domain, allApps=True)
        account = registered["account"]
        assert account == f"eip155:1:{address}"
        identity_did = await sc.assert_identity(registered)
        [watcher] = await sc.watchers()
        assert (watcher.account, watcher.project) == (account, None)
        assert did_key_id(identity_did) in watcher.did_key

        # ---- subscribe: one subscriber row, the client holds its key and topic and is on the relay topic
        sub = await wallet.call("subscribe", account=account, appDomain=sc.domain)
        subscriber = await sc.subscriber(account)
        assert subscriber is not None
        assert (sub["symKey"], sub["topic"]) == (subscriber.sym_key, subscriber.topic)
        assert sub["relaySubscribed"] is True
        assert enabled(sub) == sorted(subscriber.scope) == sorted(sc.dapp.types.values())
        sym_key = subscriber.sym_key

        # ---- notify: two notifications in one request (so one instant), then a third, later
        alert_content = {"type": alerts, "title": "Price alert", "body": "ETH crossed 4000",
                         "icon": f"http://{sc.domain}/icon.png", "url": f"http://{sc.domain}/alerts/1"}
        news_content = {"type": news, "title": "Weekly news", "body": "What happened this week"}
        promo_content = {"type": promotions, "title": "A promotion", "body": "Half price", "url": f"http://{sc.domain}/p"}
        answer = await sc.send_v1([item("n-alert", alert_content, account), item("n-news", news_content, account)])
        assert answer == {"sent": [account, account], "failed": [], "not_found": []}
        for nid in ("n-alert", "n-news"):
            status = await sc.stack.delivered(sc.dapp, nid, 1)
            assert (status["published"], status["total"]) == (1, 1), status
        answer = await sc.send_v1([item("n-promo", promo_content, account)])
        assert answer == {"sent": [account], "failed": [], "not_found": []}
        status = await sc.stack.delivered(sc.dapp, "n-promo", 1)
        assert (status["published"], status["total"]) == (1, 1), status
        inbox = await sc.inbox(sym_key)
        assert set(inbox) == {"n-alert", "n-news", "n-promo"}
        assert all(row.status == "published" and not row.is_read for row in inbox.values())
        assert inbox["n-alert"].created_at == inbox["n-news"].created_at < inbox["n-promo"].created_at
        ids = {nid: row.id for nid, row in inbox.items()}

        # the client emitted notify_message for each, with what the dapp sent, under the inbox ids
        received = await wallet.call("messages", atLeast=3)
        assert len(received) == 3
        assert {m["topic"] for m in received} == {subscriber.topic}
        assert received[-1]["message"]["id"] == ids["n-promo"]  # the relay keeps the topic's order
        by_id = {m["message"]["id"]: m["message"] for m in received}
        assert by_id == {
            ids["n-alert"]: {"id": ids["n-alert"], "sent_at": inbox["n-alert"].created_at, "is_read": False,
                             **alert_content},
            ids["n-news"]: {"id": ids["n-news"], "sent_at": inbox["n-news"].created_at, "is_read": False,
                            "icon": "", "url": "", **news_content},
            ids["n-promo"]: {"id": ids["n-promo"], "sent_at": inbox["n-promo"].created_at, "is_read": False,
                             "icon": "", **promo_content},
        }
        # and answered each with notify_message_response (tag 4003), which the relay holds, signed by it
        published = (await wallet.call("state"))["published"]
        acks = [m for m in published if m["tag"] == spec.NOTIFY_MESSAGE.response_tag]
        assert [m["topic"] for m in acks] == [subscriber.topic] * 3
        await assert_answered(sc, sym_key, received, identity_did, account, mjv=None if legacy else "1")

        # ---- history and read state
        # equal timestamps are ordered by id, descending (store.history's keyset)
        newest_first = [ids["n-promo"], *sorted([ids["n-alert"], ids["n-news"]], reverse=True)]
        if legacy:
            # 0.14.6 has no wc_notifyGetNotifications nor wc_notifyMarkNotificationsAsRead: it keeps what it
            # received in its own store, and the server never hears of reading
            local = await wallet.call("localHistory", account=account, appDomain=sc.domain)
            assert {r["id"]: r["message"] for r in local} == {m["id"]: m["message"] for m in received}
            assert await unread_ids(sc.database_url, sym_key) == set(ids.values())
        else:
            page = await wallet.call("history", account=account, appDomain=sc.domain, limit=2)
            assert [n["id"] for n in page["notifications"]] == newest_first[:2]
            assert (page["hasMore"], page["hasMoreUnread"]) == (True, True)
            rest = await wallet.call("history", account=account, appDomain=sc.domain, limit=2,
                                     startingAfter=newest_first[1])
            assert [n["id"] for n in rest["notifications"]] == newest_first[2:]
            assert (rest["hasMore"], rest["hasMoreUnread"]) == (False, False)
            items = {n["id"]: n for n in page["notifications"] + rest["notifications"]}
            assert items[ids["n-alert"]] == {
                "id": ids["n-alert"], "sentAt": inbox["n-alert"].created_at, "isRead": False, "type": alerts,
                "title": alert_content["title"], "body": alert_content["body"], "url": alert_content["url"],
            }
            assert items[ids["n-news"]]["url"] is None  # the server's "" (no url), as the client maps it

            # mark one read: the server's row, then the history (unread first by default, or by time)
            await wallet.call("markRead", account=account, appDomain=sc.domain, ids=[ids["n-alert"]])
            assert await unread_ids(sc.database_url, sym_key) == {ids["n-news"], ids["n-promo"]}
            unread_first = await wallet.call("history", account=account, appDomain=sc.domain, limit=10)
            assert [(n["id"], n["isRead"]) for n in unread_first["notifications"]] == [
                (ids["n-promo"], False), (ids["n-news"], False), (ids["n-alert"], True)]
            by_time = await wallet.call("history", account=account, appDomain=sc.domain, limit=10,
                                        unreadFirst=False)
            assert [n["id"] for n in by_time["notifications"]] == newest_first

            # mark all read
            await wallet.call("markRead", account=account, appDomain=sc.domain)
            assert await unread_ids(sc.database_url, sym_key) == set()
            after = await wallet.call("history", account=account, appDomain=sc.domain, limit=10)
            assert [(n["id"], n["isRead"]) for n in after["notifications"]] == [(i, True) for i in newest_first]
            assert all(row.is_read for row in (await sc.inbox(sym_key)).values())

        # ---- update the scope to alerts only: news is refused by the server, alerts still arrives
        updated = await wallet.call("update", account=account, appDomain=sc.domain, scope=[alerts])
        assert enabled(updated) == [alerts]
        after_update = await sc.subscriber(account)
        assert after_update is not None
        assert list(after_update.scope) == [alerts]
        assert after_update.sym_key == sym_key  # same subscription, same key
        if not legacy:
            assert updated["unreadNotificationCount"] == 0  # the update answer's sbs, after mark-all-read
        answer = await sc.send_v1([
            item("n-news-2", {**news_content, "title": "More news"}, account),
            item("n-alert-2", {**alert_content, "title": "Alert 2"}, account),
        ])
        refused_type = {"account": account, "reason": spec.NOTIFY_REASON_NOT_SUBSCRIBED_TO_TYPE}
        assert answer == {"sent": [account], "failed": [refused_type], "not_found": []}
        status = await sc.stack.delivered(sc.dapp, "n-alert-2", 1)
        assert (status["published"], status["total"]) == (1, 1), status
        inbox = await sc.inbox(sym_key)
        assert "n-news-2" not in inbox
        received = await wallet.call("messages", atLeast=4)
        assert [m["message"]["id"] for m in received[3:]] == [inbox["n-alert-2"].id]
        assert received[3]["message"]["title"] == "Alert 2"
        await assert_answered(sc, sym_key, received, identity_did, account, mjv=None if legacy else "1")

        # ---- delete: the client drops the subscription and its topic; the server finds nobody to send to
        deleted = await wallet.call("deleteSubscription", account=account, appDomain=sc.domain)
        assert deleted["active"] == {}
        assert deleted["relaySubscribed"] is False
        assert await sc.subscriber(account) is None
        answer = await sc.send_v1([item("n-late", alert_content, account)])
        assert answer == {"sent": [], "failed": [], "not_found": [account]}

        await sc.assert_local(wallet)
        changed = [r["method"] for r in (await wallet.call("state"))["requests"]].count("wc_notifySubscriptionsChanged")
        # mjv "1" (1.4.1): never told of what it did itself; no mjv (0.14.6) means "0": told of its subscribe,
        # update and delete, which is how 0.14.6 learns their outcome
        assert changed == (3 if legacy else 0)


async def test_server_requests_to_one_wallet_have_distinct_json_rpc_ids(
    start_wallet: WalletFactory, tmp_path: Path
) -> None:
    """Every request the notify server sends one wallet needs an id of its own: the clients keep their
    JSON-RPC history by id alone. 0.14.6 is told of its own subscribe (no mjv means "0"); a notification in
    the same second used to get the id of that ``wc_notifySubscriptionsChanged`` (ids were built from whole
    seconds), which 0.14.6 never answers, so it answered the notification with that request's tag (4013,
    ttl 300) instead of ``notify_message_response``'s 4003. Ids now come from one increasing generator.
    Everything here happens within a second or so, which is when the old ids collided."""
    async with scene(tmp_path) as sc:
        wallet = await start_wallet()
        await sc.init(wallet, "notify0146")
        private_key, _ = new_eth_key()
        account = (await wallet.call("register", privateKey=private_key, domain=sc.domain, allApps=True))["account"]
        sub = await wallet.call("subscribe", account=account, appDomain=sc.domain)
        content = {"type": sc.dapp.types["alerts"], "title": "t", "body": "b"}
        for nid in ("n-1", "n-2"):  # two requests, so two batches
            await sc.send_v1([item(nid, content, account)])
            await sc.stack.delivered(sc.dapp, nid, 1)
        received = await wallet.call("messages", atLeast=2)
        requests = (await wallet.call("state"))["requests"]
        ids = [r["id"] for r in requests if r["method"] in ("wc_notifySubscriptionsChanged", "wc_notifyMessage")]
        assert len(ids) == 3
        assert len(set(ids)) == len(ids), ids
        log = await sc.relay_log(sub["symKey"])
        assert sorted(tag for tag, _ in log.answers.values()) == [spec.NOTIFY_MESSAGE.response_tag] * len(received)
