"""The dapp SDK (wcnotify.dapp) end to end over real sockets, on SQLite and PostgreSQL: a project set up with
the admin and dapp clients, its did.json served by DidHost on a real port and used by a wallet to subscribe,
typed send results and delivery status, the error classes, subscriber paging, webhooks received by
WebhookReceiver, and the guide's example (docs/dapp-sdk.md) run as written."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account as EthAccount

from wcnotify import spec
from wcnotify.dapp import (
    ConflictError,
    DappApiError,
    DidHost,
    FailedAccount,
    ImageUrls,
    NotFoundError,
    Notification,
    NotificationType,
    NotifyAdminClient,
    NotifyDappClient,
    RateLimitedError,
    SendRequest,
    ServerUnreachableError,
    SubscriptionEvent,
    UnauthorizedError,
    ValidationError,
    WebhookReceiver,
    WelcomeNotification,
)
from wcnotify.notify.ratelimit import Rate
from wcnotify.protocol.did import did_web, did_web_url, parse_did_document
from wcnotify.protocol.webhook_signature import signature_header
from wcnotify.serving import AsgiService

from .notify_stack import ADMIN, Dapp, Stack, Wallet, running_stack

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "dapp-sdk.md"


async def new_project(stack: Stack, name: str = "Gm") -> tuple[NotifyAdminClient, NotifyDappClient]:
    admin = NotifyAdminClient(stack.notify_url, ADMIN, http=stack.http)
    return admin, admin.dapp_client(await admin.create_project(name))


async def served_dapp(http: httpx.AsyncClient, client: NotifyDappClient, domain: str, secret: str) -> Dapp:
    """The test wallet's view of the dapp, built from the did.json it fetched from the dapp's own site."""
    r = await http.get(did_web_url(domain))  # what a wallet resolves did:web:localhost:PORT to
    assert r.status_code == 200, r.text
    keys = parse_did_document(r.json(), expected_did=did_web(domain))
    types = {t.name: t.id for t in await client.notification_types()}
    return Dapp(client.project_id, secret, domain, keys.key_agreement, keys.authentication, types)


async def subscribed_wallet(stack: Stack, dapp: Dapp, types: list[str]) -> Wallet:
    wallet = Wallet(stack)
    await wallet.__aenter__()
    await wallet.register(dapp.domain)
    await wallet.subscribe(dapp, types)
    return wallet


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------- the main story


async def test_a_dapp_serves_its_did_json_and_sends_to_the_wallet_that_used_it(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        admin = NotifyAdminClient(stack.notify_url, ADMIN, http=stack.http)
        credentials = await admin.create_project("Gm", description="gm, every morning", icons=["https://gm.example/i.png"])
        assert credentials.secret not in repr(credentials)
        assert credentials.project_id in [p.project_id for p in await admin.list_projects()]
        client = admin.dapp_client(credentials)
        assert credentials.secret not in repr(client)

        site = AsgiService(DidHost(client=client), "127.0.0.1", 0, name="dapp site")  # bound: the port is known
        domain = f"localhost:{site.port}"
        with pytest.raises(NotFoundError, match="no app domain"):
            await client.did_document()
        keys = await client.set_app_domain(domain)
        assert await client.set_app_domain(domain) == keys  # the same domain again: the same keys
        alerts = await client.add_notification_type("alerts", "Price alerts", ImageUrls(sm="https://gm.example/a.png"))
        news = await client.add_notification_type("news")
        assert sorted(await client.notification_types(), key=lambda t: t.name) == [
            alerts, NotificationType(news.id, "news", "", ImageUrls())
        ]
        info = await client.project()
        assert (info.name, info.app_domain, info.listed) == ("Gm", domain, False)
        assert (info.subscribe_key, info.authentication_key) == (keys.subscribe_key, keys.authentication_key)

        async with site:
            dapp = await served_dapp(stack.http, client, domain, credentials.secret)
            assert dapp.subscribe_key.hex() == keys.subscribe_key
            assert dapp.authentication_key.hex() == keys.authentication_key
            r = await stack.http.get(f"http://localhost:{site.port}{spec.NOTIFY_CONFIG_JSON_PATH}")
            assert r.headers["access-control-allow-origin"] == "*"
            config = r.json()
            assert config | {"types": None} == {"schemaVersion": 1, "name": "Gm", "description": "gm, every morning",
                                                "icons": ["https://gm.example/i.png"], "types": None}
            assert sorted(config["types"], key=lambda t: t["name"]) == [
                {"id": alerts.id, "name": "alerts", "description": "Price alerts"},
                {"id": news.id, "name": "news", "description": ""},
            ]
            assert (await stack.http.get(f"http://127.0.0.1:{site.port}/elsewhere")).status_code == 404

        alerted = await subscribed_wallet(stack, dapp, ["alerts"])
        news_only = await subscribed_wallet(stack, dapp, ["news"])
        try:
            stranger = str(EthAccount.create().address)
            accounts = [str(alerted.account), str(news_only.account), f"eip155:1:{stranger}"]
            result = await client.send(Notification(alerts.id, "gm", "ETH is up", url="https://gm.example/eth"),
                                       accounts)
            assert result.sent == (str(alerted.account),)
            assert result.failed == (FailedAccount(str(news_only.account), spec.NOTIFY_REASON_NOT_SUBSCRIBED_TO_TYPE),)
            assert result.not_found == (f"eip155:1:{stranger}",) and not result.all_sent
            assert result.reason(str(news_only.account)) == spec.NOTIFY_REASON_NOT_SUBSCRIBED_TO_TYPE
            assert result.reason(f"eip155:1:{stranger}") == "not subscribed"
            assert result.reason(str(alerted.account)) is None
            uuid.UUID(result.notification_id)  # the client drew the id: the send is idempotent

            claims = await alerted.next_notification(dapp)  # verified against the served authentication key
            assert (claims["msg"]["title"], claims["msg"]["type"], claims["msg"]["url"]) == (
                "gm", alerts.id, "https://gm.example/eth")
            status = await client.wait_for_delivery(result.notification_id, timeout=15)
            assert (status.total, status.published, status.queued, status.failed) == (1, 1, 0, 0)
            assert status.title == "gm" and status.type == alerts.id and status.settled

            # the same id again (a retry after a timeout, say) reaches nobody twice
            again = await client.send(Notification(alerts.id, "gm", "ETH is up"), [str(alerted.account)],
                                      notification_id=result.notification_id)
            assert again.notification_id == result.notification_id
            assert (await client.notification_status(result.notification_id)).total == 1

            # several notifications in one request, ids in request order (the wallet's next message is the
            # first of them, not a second "gm": the resend above delivered nothing)
            both = await client.send_many([
                SendRequest(Notification(alerts.id, "one", "first"), (str(alerted.account),), "batch-1"),
                SendRequest(Notification(news.id, "two", "second"), (str(news_only.account),)),
            ])
            assert both.notification_ids[0] == "batch-1" and len(both.notification_ids) == 2
            assert both.sent == (str(alerted.account), str(news_only.account)) and both.all_sent
            assert (await alerted.next_notification(dapp))["msg"]["title"] == "one"
            assert (await news_only.next_notification(dapp))["msg"]["title"] == "two"

            # broadcast to every subscriber of a type, then a withdrawn id cannot be reused
            sent = await client.broadcast(Notification(news.id, "news", "for all"), notification_id="weekly-1")
            assert (sent.notification_id, sent.queued) == ("weekly-1", 1)
            assert (await news_only.next_notification(dapp))["msg"]["title"] == "news"
            withdrawn = await client.withdraw("weekly-1")
            assert withdrawn.withdrawn_now == 0 and withdrawn.status.withdrawn_at is not None
            with pytest.raises(ConflictError, match="withdrawn"):
                await client.broadcast(Notification(news.id, "news", "for all"), notification_id="weekly-1")
        finally:
            await alerted.__aexit__()
            await news_only.__aexit__()


async def test_settings_welcome_registry_and_types(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        _, client = await new_project(stack)
        await client.set_app_domain("gm-settings.example")
        gm = await client.add_notification_type("gm")
        assert await client.welcome_notification() is None
        welcome = WelcomeNotification(True, gm.id, "Welcome", "gm from now on", url="https://gm.example")
        await client.set_welcome_notification(welcome)
        assert await client.welcome_notification() == welcome

        updated = await client.update_project(description="now listed", listed=True)
        assert (updated.name, updated.description, updated.listed) == ("Gm", "now listed", True)
        listed = (await stack.http.get(f"{stack.notify_url}/v1/apps/gm-settings.example")).json()
        assert listed["projectId"] == client.project_id and listed["didJson"] == await client.did_document()
        config = await client.app_config()
        assert (config.name, config.app_domain, config.notification_types) == ("Gm", "gm-settings.example", (gm,))

        # a welcome naming a type that is then deleted is refused afterwards, not silently kept
        await client.delete_notification_type(gm.id)
        assert await client.notification_types() == []
        with pytest.raises(NotFoundError):
            await client.delete_notification_type(gm.id)
        with pytest.raises(ValidationError) as refused:
            await client.set_welcome_notification(welcome)
        assert refused.value.field == "type"
        await client.mark_all_as_read()  # accepted (204) with nothing to mark


# --------------------------------------------------------------------------------------------- errors


async def test_each_failure_is_its_own_error_class(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        admin, client = await new_project(stack)
        await client.set_app_domain("gm-errors.example")
        alerts = await client.add_notification_type("alerts")
        account = f"eip155:1:{EthAccount.create().address}"

        wrong = "wrong-secret-" + uuid.uuid4().hex
        async with NotifyDappClient(stack.notify_url, client.project_id, wrong) as bad:
            with pytest.raises(UnauthorizedError) as unauthorized:
                await bad.send(Notification(alerts.id, "gm", "hi"), [account])
        assert unauthorized.value.status == 401 and not unauthorized.value.retryable
        assert wrong not in str(unauthorized.value) and wrong not in repr(bad)
        with pytest.raises(UnauthorizedError, match="admin token"):
            await NotifyAdminClient(stack.notify_url, wrong, http=stack.http).list_projects()

        with pytest.raises(ValidationError) as unknown_type:
            await client.send(Notification(str(uuid.uuid4()), "gm", "hi"), [account])
        assert unknown_type.value.status == 422 and unknown_type.value.field == "0.notification.type"
        assert "is not a notification type of this project" in unknown_type.value.message

        with pytest.raises(ValidationError) as long_title:
            await client.send(Notification(alerts.id, "x" * (spec.NOTIFY_TITLE_MAX + 1), "hi"), [account])
        assert long_title.value.field == "0.notification.title" and "64" in long_title.value.message
        with pytest.raises(ValidationError) as bad_account:
            await client.send_many([SendRequest(Notification(alerts.id, "gm", "hi"), (account,)),
                                    SendRequest(Notification(alerts.id, "gm", "hi"), ("not-an-account",))])
        assert bad_account.value.field == "1.accounts.0"
        with pytest.raises(TypeError, match="not one string"):
            await client.send(Notification(alerts.id, "gm", "hi"), account)

        with pytest.raises(ConflictError, match="already has a notification type"):
            await client.add_notification_type("alerts")
        other = admin.dapp_client(await admin.create_project("Other"))
        with pytest.raises(ConflictError, match="in-use"):
            await other.set_app_domain("gm-errors.example")
        with pytest.raises(NotFoundError) as missing:
            await client.notification_status("never-sent")
        assert missing.value.status == 404
        with pytest.raises(NotFoundError):
            await NotifyDappClient(stack.notify_url, "no-such-project", "x", http=stack.http).did_document()
        with pytest.raises(DappApiError):  # every class shares the base
            await client.withdraw("never-sent")

        port = closed_port()
        async with NotifyDappClient(f"http://127.0.0.1:{port}", client.project_id, wrong, timeout=5) as nowhere:
            with pytest.raises(ServerUnreachableError) as unreachable:
                await nowhere.project()
        assert unreachable.value.status is None and unreachable.value.retryable
        assert f"127.0.0.1:{port}" in str(unreachable.value) and wrong not in str(unreachable.value)


async def test_a_rate_limited_send_says_when_to_retry(database_url: str) -> None:
    async with running_stack(database_url, send_rate=Rate(0.01, 1)) as stack:
        _, client = await new_project(stack)
        await client.set_app_domain("gm-limited.example")
        alerts = await client.add_notification_type("alerts")
        notification = Notification(alerts.id, "gm", "hi")
        await client.broadcast(notification)  # the burst of one
        with pytest.raises(RateLimitedError) as limited:
            await client.send(notification, [f"eip155:1:{EthAccount.create().address}"])
        assert limited.value.status == 429 and limited.value.retryable
        assert limited.value.retry_after is not None and 1 <= limited.value.retry_after <= 100


# ---------------------------------------------------------------------------------------- subscribers


async def test_subscribers_page_across_several_pages_and_lookups_split_by_100(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        _, client = await new_project(stack)
        site = AsgiService(DidHost(client=client), "127.0.0.1", 0, name="dapp site")
        domain = f"localhost:{site.port}"
        await client.set_app_domain(domain)
        alerts = await client.add_notification_type("alerts")
        news = await client.add_notification_type("news")
        async with site:
            dapp = await served_dapp(stack.http, client, domain, "unused")
        wallets = await asyncio.gather(*(subscribed_wallet(stack, dapp, ["alerts", "news"][: 1 + i % 2])
                                         for i in range(5)))
        try:
            expected = {str(w.account) for w in wallets}
            first = await client.subscribers_page(limit=2)
            assert len(first.subscribers) == 2 and first.next_cursor is not None
            pages, cursor = [first], first.next_cursor
            while cursor is not None:
                pages.append(await client.subscribers_page(limit=2, cursor=cursor))
                cursor = pages[-1].next_cursor
            assert [len(p.subscribers) for p in pages] == [2, 2, 1]
            walked = [s async for s in client.iter_subscribers(page_size=2)]
            assert [s.account for s in walked] == [s.account for p in pages for s in p.subscribers]
            assert {s.account for s in walked} == expected and len(walked) == 5
            by_account = {s.account: set(s.notification_types) for s in walked}
            assert by_account[str(wallets[1].account)] == {alerts.id, news.id}
            assert by_account[str(wallets[0].account)] == {alerts.id}
            assert all(abs(s.created_at - time.time() * 1000) < 120_000 for s in walked)

            # 105 accounts: two requests; only the subscribed ones come back, with their types
            strangers = [f"eip155:1:{EthAccount.create().address}" for _ in range(100)]
            found = await client.lookup_subscribers([*strangers[:50], *(w.account for w in wallets), *strangers[50:]])
            assert {k: set(v) for k, v in found.items()} == by_account
            assert await client.lookup_subscribers([]) == {}

            sent = await client.broadcast(Notification(alerts.id, "all", "of you"))
            assert sent.queued == 5
            assert (await client.wait_for_delivery(sent.notification_id, timeout=15)).published == 5
            for wallet in wallets:
                assert (await wallet.next_notification(dapp))["msg"]["title"] == "all"
        finally:
            for wallet in wallets:
                await wallet.__aexit__()


# ------------------------------------------------------------------------------------------- webhooks


async def test_webhooks_reach_the_dapps_site_verified_and_forgeries_are_refused(database_url: str) -> None:
    async with running_stack(database_url, webhook_retry_base=0.05) as stack:
        _, client = await new_project(stack)
        site = AsgiService(None, "127.0.0.1", 0, name="dapp site")  # the app is set once the secret is known
        domain = f"localhost:{site.port}"
        await client.set_app_domain(domain)
        alerts = await client.add_notification_type("alerts")
        url = f"http://127.0.0.1:{site.port}/hooks/notify"
        webhook = await client.create_webhook(url, [spec.WebhookEvent.SUBSCRIBED, "unsubscribed"])
        assert webhook.secret.startswith(spec.WEBHOOK_SECRET_PREFIX) and webhook.secret not in repr(webhook)
        assert webhook.events == (spec.WebhookEvent.SUBSCRIBED, spec.WebhookEvent.UNSUBSCRIBED)

        events: asyncio.Queue[SubscriptionEvent] = asyncio.Queue()
        site.app = DidHost(client=client, app=WebhookReceiver(webhook.secret, events.put))  # one site, both jobs
        async with site:
            dapp = await served_dapp(stack.http, client, domain, "unused")
            wallet = await subscribed_wallet(stack, dapp, ["alerts"])
            try:
                event = await asyncio.wait_for(events.get(), 10)
                assert (event.event, event.account, event.project_id, event.app_domain, event.notification_types) == (
                    spec.WebhookEvent.SUBSCRIBED, str(wallet.account), client.project_id, domain, (alerts.id,))
                assert event.delivery is not None and abs(event.signed_at - time.time()) < 60

                # a forgery (another secret) and a replay of a genuine body signed long ago are refused
                body = b'{"id":"forged","event":"unsubscribed"}'
                for header in (signature_header("whsec_guess", int(time.time()), body),
                               signature_header(webhook.secret, int(time.time()) - 3600, body)):
                    r = await stack.http.post(url, content=body, headers={spec.WEBHOOK_HEADER_SIGNATURE: header})
                    assert r.status_code == 400, r.text
                assert events.empty()

                await wallet.delete(dapp)
                gone = await asyncio.wait_for(events.get(), 10)
                assert (gone.event, gone.notification_types) == (spec.WebhookEvent.UNSUBSCRIBED, ())
            finally:
                await wallet.__aexit__()

            deadline = time.monotonic() + 5  # the receiver has the POST a moment before the server records it
            while (listed := await client.webhooks())[0].pending and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            (info,) = listed
            assert (info.id, info.url, info.delivered, info.failed, info.pending, info.last_error) == (
                webhook.id, url, 2, 0, 0, None)

        await client.delete_webhook(webhook.id)
        assert await client.webhooks() == []
        with pytest.raises(NotFoundError):
            await client.delete_webhook(webhook.id)


# ---------------------------------------------------------------------------------------- the guide


def guide_code() -> dict[str, Any]:
    """The guide's first Python block, executed: its functions, as a reader would copy them."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    namespace: dict[str, Any] = {"__name__": "dapp_sdk_guide"}
    exec(compile(blocks[0], str(GUIDE), "exec"), namespace)
    return namespace


async def test_the_guides_example_runs_as_written(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    guide = guide_code()
    async with running_stack(database_url) as stack:
        site = AsgiService(None, "127.0.0.1", 0, name="dapp site")
        domain = f"localhost:{site.port}"
        project_id, secret, type_id = await guide["set_up"](stack.notify_url, ADMIN, domain)
        async with NotifyDappClient(stack.notify_url, project_id, secret) as client:
            site.app = DidHost(client=client)
            async with site:
                dapp = await served_dapp(stack.http, client, domain, secret)
            wallet = await subscribed_wallet(stack, dapp, ["gm"])
            try:
                stranger = f"eip155:1:{EthAccount.create().address}"
                await guide["send_gm"](client, type_id, [str(wallet.account), stranger])
                assert (await wallet.next_notification(dapp))["msg"]["body"] == "Have a great day"
            finally:
                await wallet.__aexit__()
    assert capsys.readouterr().out.splitlines() == [f"{stranger}: not subscribed", "1 of 1 delivered"]


# ------------------------------------------------------------------------------------------- did_host


async def test_did_host_serves_a_saved_document_and_keeps_the_last_copy_when_the_server_is_gone(
    database_url: str,
) -> None:
    async with running_stack(database_url) as stack:
        admin, client = await new_project(stack)
        await client.set_app_domain("gm-host.example")
        document = await client.did_document()
        unconfigured = admin.dapp_client(await admin.create_project("No domain yet"))

        saved = DidHost(document)  # no notify server at run time, and no wc-notify-config.json to offer
        fetched = DidHost(client=client, ttl=0)  # fetched again on every request while the server answers
        early = DidHost(client=unconfigured)
        with pytest.raises(ValueError, match="either"):
            DidHost(document, client=client)
        with pytest.raises(ValueError, match="no verificationMethod"):  # refused before a wallet sees it
            DidHost({"id": "did:web:gm-host.example"})
        async with AsgiService(saved, "127.0.0.1", 0, name="saved") as a, \
                AsgiService(fetched, "127.0.0.1", 0, name="fetched") as b, \
                AsgiService(early, "127.0.0.1", 0, name="early") as c:
            r = await stack.http.get(f"{a.url}{spec.DID_JSON_PATH}")
            assert r.status_code == 200 and r.json() == document
            assert r.headers["content-type"] == "application/json"
            head = await stack.http.head(f"{a.url}{spec.DID_JSON_PATH}")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(r.content))
            assert (await stack.http.post(f"{a.url}{spec.DID_JSON_PATH}")).status_code == 405
            assert (await stack.http.get(f"{a.url}{spec.NOTIFY_CONFIG_JSON_PATH}")).status_code == 404

            assert (await stack.http.get(f"{b.url}{spec.DID_JSON_PATH}")).json() == document
            fetched.client = NotifyDappClient(f"http://127.0.0.1:{closed_port()}", client.project_id, "x",
                                              http=stack.http, timeout=2)
            stale = await stack.http.get(f"{b.url}{spec.DID_JSON_PATH}")
            assert stale.status_code == 200 and stale.json() == document

            missing = await stack.http.get(f"{c.url}{spec.DID_JSON_PATH}")
            assert missing.status_code == 404 and "no app domain" in missing.json()["error"]
            early.client = fetched.client  # nothing fetched yet and nobody answering: 503
            assert (await stack.http.get(f"{c.url}{spec.DID_JSON_PATH}")).status_code == 503
