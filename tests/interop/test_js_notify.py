"""The OFFICIAL wallet SDK, @walletconnect/notify-client 1.4.1, against our whole stack on loopback.

Each test runs the relay, keys server and notify server in-process (``running_stack``, SQLite in
``tmp_path``) and creates a dapp whose app domain is ``localhost:PORT``: PORT is a small HTTP server the
test runs on 127.0.0.1, serving at ``/.well-known/did.json`` the did.json our notify server generated
for the project (the client fetches ``http://localhost:PORT/.well-known/did.json``). Each Node process
(``js/notify_wallet.mjs``) is one device, driving the client as a wallet does:

1. ``prepareRegistration`` + an EIP-191 signature (ethers v5) + ``register``: the client POSTs the CACAO to
   our keys server, then sends ``wc_notifyWatchSubscription`` to our notify server (whose did.json it
   fetches from ``client.notifyServerUrl``, pointed at ours). Both an all-apps and a this-app CACAO
   (whose watch names ``app: "did:web:localhost:PORT"``, raw colon);
2. ``subscribe``: fetches the dapp's did.json and notify config (the explorer URL is rewritten to our
   server's ``/w3i/v1/notify-config``, so the scope holds our type ids), sends ``wc_notifySubscribe`` and
   ends with an active subscription for the app;
3. ``update`` to one type, then ``deleteSubscription``.

After each step the test reads our side: the keys server's ``GET /identity``, the notify server's
subscriber row and scope (the client's symKey and topic must be the stored ones), and the watchers. A
second test runs two devices of one account and checks that each learns what the other did from
``wc_notifySubscriptionsChanged``. Nothing leaves the machine: the Node side refuses every DNS lookup
but localhost and reports any, and every answer the client got must be a result, not a JSON-RPC error.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account as EthAccount
from sqlalchemy import select

from tests.integration.notify_stack import Dapp, Stack, running_stack
from tests.interop.line_peer import LinePeer
from wcnotify.notify import store
from wcnotify.protocol.crypto import topic_of
from wcnotify.protocol.did import Account, encode_did_key
from wcnotify.storage.tables import watchers

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
class Scene:
    """The stack, a dapp on ``localhost:PORT`` whose did.json the site serves, and its types from notify-config."""

    stack: Stack
    site: DidHost
    dapp: Dapp
    config_types: dict[str, str]  # id -> name, as /w3i/v1/notify-config answers

    @property
    def domain(self) -> str:
        return self.dapp.domain

    async def init(self, wallet: JsNotifyWallet) -> None:
        info = await wallet.call(
            "init", relayUrl=self.stack.relay.ws_url, keyserverUrl=self.stack.keys.url,
            notifyServerUrl=self.stack.notify_url,
        )
        assert info["relayUrl"] == self.stack.relay.ws_url  # no silent fallback to the public relay

    async def subscriber(self, account: str) -> store.Subscriber | None:
        async with self.stack.notify.service.db.read() as conn:
            project = await store.project_by_public_id(conn, self.dapp.project_id)
            assert project is not None
            return await store.find_subscriber(conn, project, Account.parse(account))

    async def watchers(self) -> list[Any]:
        async with self.stack.notify.service.db.read() as conn:
            return list((await conn.execute(select(watchers).order_by(watchers.c.updated_at))).all())

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
            yield Scene(stack, site, dapp, config_types)


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
