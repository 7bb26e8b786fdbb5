"""Sending through the real relay, keys server and notify server, on SQLite and PostgreSQL: ``/notify`` v0
and v1, chain-agnostic and checksum-agnostic accounts, out-of-scope and unknown accounts, idempotent
resends, the broadcast, a notification's status, withdrawal, and validation that changes nothing."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from wcnotify import spec
from wcnotify.notify.delivery import DeliveryConfig
from wcnotify.protocol.crypto import topic_of
from wcnotify.protocol.did import Account, did_web

from .notify_stack import Dapp, Stack, Wallet, db_snapshot, refused, running_stack


def account_variants(wallet: Wallet) -> tuple[str, str, str]:
    """The wallet's account as subscribed, lowercase on the same chain, and checksummed on another chain."""
    lower = f"eip155:1:{wallet.account.address.lower()}"
    other_chain = str(Account("eip155", "10", wallet.account.address).checksummed())
    return str(wallet.account), lower, other_chain


async def post(stack: Stack, dapp: Dapp, path: str, payload: Any) -> httpx.Response:
    return await stack.http.post(f"{stack.notify_url}{path}", json=payload, headers=dapp.headers)


async def test_notify_reaches_the_wallet_signed_by_the_dapp(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        async with Wallet(stack) as alice, Wallet(stack) as bob:
            for w, types in ((alice, ["alerts", "news"]), (bob, ["news"])):
                await w.register(dapp.domain)
                await w.subscribe(dapp, types)
            stranger = "eip155:1:0x" + "ab" * 20
            as_subscribed, lower, other_chain = account_variants(alice)
            before = int(time.time())
            result = await stack.send(
                dapp, [lower, str(bob.account), stranger], "alerts", notification_id="n-1",
                title="Price alert", body="ETH crossed 4k", icon="https://x.test/i.png", url="https://x.test/a",
            )
            assert result == {
                "sent": [lower], "not_found": [stranger],
                "failed": [{"account": str(bob.account), "reason": spec.NOTIFY_REASON_NOT_SUBSCRIBED_TO_TYPE}],
            }

            claims = await alice.next_notification(dapp)
            assert claims["iss"] == dapp.auth_did and claims["act"] == "notify_message" and "aud" not in claims
            assert claims["sub"] == alice.account.did_pkh and claims["app"] == did_web(dapp.domain)
            assert claims["exp"] - claims["iat"] == spec.NOTIFY_MESSAGE.request_ttl and claims["iat"] >= before
            msg = claims["msg"]
            assert {k: msg[k] for k in ("type", "title", "body", "icon", "url", "is_read")} == {
                "type": dapp.types["alerts"], "title": "Price alert", "body": "ETH crossed 4k",
                "icon": "https://x.test/i.png", "url": "https://x.test/a", "is_read": False,
            }
            assert await bob.nothing(topic_of(bob.sub_key(dapp)), wait=0.3)

            status = await stack.delivered(dapp, "n-1", 1)
            assert status["published"] == 1 and status["total"] == 1 and status["queued"] == 0
            # the inbox holds it under the same id the wallet got
            history = await alice.history(dapp)
            assert [n["id"] for n in history["nfs"]] == [msg["id"]]
            assert history["nfs"][0]["sent_at"] == msg["sent_at"]

            # the same notification_id again, from any chain or case: no second delivery
            again = await stack.send(dapp, [as_subscribed, other_chain], "alerts", notification_id="n-1")
            assert again["sent"] == [as_subscribed, other_chain]
            assert await alice.nothing(topic_of(alice.sub_key(dapp)), wait=0.3)
            assert (await stack.status(dapp, "n-1"))["total"] == 1

            # a new notification, to the account given on another chain: delivered, with the icon left out
            await stack.send(dapp, [other_chain], "news", title="weekly", body="digest")
            second = (await alice.next_notification(dapp))["msg"]
            assert second["title"] == "weekly" and second["icon"] == "" and second["url"] == ""
            assert second["id"] != msg["id"]


async def test_v1_sends_several_at_once_and_aggregates(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        async with Wallet(stack) as alice:
            await alice.register(dapp.domain)
            await alice.subscribe(dapp, ["alerts", "news"])
            items = [
                {"notification": {"type": dapp.types[t], "title": t, "body": "b"}, "accounts": [str(alice.account)]}
                for t in ("alerts", "news")
            ]
            items.append({"notification": items[0]["notification"], "accounts": ["eip155:1:0x" + "cd" * 20]})
            r = await post(stack, dapp, f"/v1/{dapp.project_id}/notify", items)
            assert r.status_code == 200, r.text
            stranger = "eip155:1:0x" + "cd" * 20
            assert r.json() == {"sent": [str(alice.account)] * 2, "failed": [], "not_found": [stranger]}
            titles = {(await alice.next_notification(dapp))["msg"]["title"] for _ in range(2)}
            assert titles == {"alerts", "news"}


async def test_broadcast_status_and_withdraw(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        wallets = [Wallet(stack) for _ in range(3)]
        for w, types in zip(wallets, (["alerts"], ["alerts", "news"], ["news"]), strict=True):
            await w.__aenter__()
            await w.register(dapp.domain)
            await w.subscribe(dapp, types)
        try:
            r = await post(stack, dapp, f"/v1/{dapp.project_id}/notify/broadcast",
                           {"notification_id": "b-1", "notification": {"type": dapp.types["alerts"], "title": "t",
                                                                       "body": "to all alerts"}})
            assert r.status_code == 200, r.text
            assert r.json() == {"notification_id": "b-1", "queued": 2}
            ids = [(await w.next_notification(dapp))["msg"] for w in wallets[:2]]
            assert [m["body"] for m in ids] == ["to all alerts"] * 2
            # the delivery ids: distinct version-4 UUIDs, as every other path makes them
            assert len({m["id"] for m in ids}) == 2
            assert all(uuid.UUID(m["id"]).version == 4 and str(uuid.UUID(m["id"])) == m["id"] for m in ids), ids
            status = await stack.delivered(dapp, "b-1", 2)
            assert (status["published"], status["total"], status["withdrawn"]) == (2, 2, 0)
            # a broadcast again under the same id queues nothing new
            again = {"notification_id": "b-1", "notification": {"type": dapp.types["alerts"], "title": "t",
                                                                "body": "to all alerts"}}
            r = await post(stack, dapp, f"/v1/{dapp.project_id}/notify/broadcast", again)
            assert r.json()["queued"] == 0
            # ... but reaches a subscriber who joined since, once
            late = Wallet(stack)
            wallets.append(late)
            await late.__aenter__()
            await late.register(dapp.domain)
            await late.subscribe(dapp, ["alerts"])
            r = await post(stack, dapp, f"/v1/{dapp.project_id}/notify/broadcast", again)
            assert r.json() == {"notification_id": "b-1", "queued": 1}
            assert (await late.next_notification(dapp))["msg"]["body"] == "to all alerts"
            assert (await stack.delivered(dapp, "b-1", 3))["total"] == 3
            # withdrawing after delivery withdraws nothing
            r = await stack.http.delete(f"{stack.notify_url}/v1/{dapp.project_id}/notifications/b-1",
                                        headers=dapp.headers)
            assert r.status_code == 200 and r.json()["withdrawn_now"] == 0 and r.json()["published"] == 3
            refused(await stack.http.get(f"{stack.notify_url}/v1/{dapp.project_id}/notifications/nope",
                                         headers=dapp.headers), 404, "no notification")
        finally:
            for w in wallets:
                await w.__aexit__()


async def test_withdraw_before_delivery(database_url: str) -> None:
    # no delivery workers: everything sent stays queued until withdrawn
    async with running_stack(database_url, delivery=DeliveryConfig(workers=0)) as stack:
        dapp = await stack.create_dapp()
        async with Wallet(stack) as alice:
            await alice.register(dapp.domain)
            await alice.subscribe(dapp, ["alerts"])
            await stack.send(dapp, [str(alice.account)], "alerts", notification_id="w-1")
            await stack.send(dapp, [str(alice.account)], "alerts", notification_id="keep")
            status = await stack.status(dapp, "w-1")
            assert (status["queued"], status["published"]) == (1, 0)
            r = await stack.http.delete(f"{stack.notify_url}/v1/{dapp.project_id}/notifications/w-1",
                                        headers=dapp.headers)
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["withdrawn_now"], body["withdrawn"], body["queued"]) == (1, 1, 0)
            assert body["withdrawn_at"] is not None
            # gone from the inbox; the other one stays
            assert [n["title"] for n in (await alice.history(dapp))["nfs"]] == ["hello"]
            # and never sent again under that id
            refused(await post(stack, dapp, f"/{dapp.project_id}/notify",
                               {"notification_id": "w-1", "accounts": [str(alice.account)],
                                "notification": {"type": dapp.types["alerts"], "title": "t", "body": "b"}}),
                    409, "withdrawn")
            # another project cannot see or withdraw it
            other = await stack.create_dapp()
            refused(await stack.http.delete(f"{stack.notify_url}/v1/{other.project_id}/notifications/keep",
                                            headers=other.headers), 404, "no notification")
            assert (await stack.status(dapp, "keep"))["queued"] == 1


async def test_bad_sends_are_refused_and_change_nothing(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        async with Wallet(stack) as alice:
            await alice.register(dapp.domain)
            await alice.subscribe(dapp, ["alerts"])
            me = str(alice.account)
            good = {"type": dapp.types["alerts"], "title": "t", "body": "b"}
            before = await db_snapshot(database_url)
            def bad(field: str, value: Any) -> dict[str, Any]:
                return {"notification": {**good, field: value}, "accounts": [me]}

            cases: list[tuple[str, Any, int, str]] = [
                ("/{p}/notify", bad("title", ""), 422, "notification.title"),
                ("/{p}/notify", bad("title", "x" * 65), 422, "notification.title"),
                ("/{p}/notify", bad("body", "x" * 256), 422, "notification.body"),
                ("/{p}/notify", bad("icon", "x" * 256), 422, "notification.icon"),
                ("/{p}/notify", bad("url", ""), 422, "notification.url"),
                ("/{p}/notify", bad("type", "nope"), 422, "notification.type"),
                ("/{p}/notify", {"notification": good, "accounts": [me, "eip155:1:0x12"]}, 422, "accounts.1"),
                ("/{p}/notify", {"notification": good, "accounts": [me] * 501}, 422, "accounts"),
                ("/{p}/notify", {"notification": good}, 422, "accounts"),
                ("/{p}/notify", {"accounts": [me]}, 422, "notification"),
                ("/{p}/notify", [1, 2], 422, "body"),
                ("/v1/{p}/notify", [{"notification": good, "accounts": [me] * 300}] * 2, 422, "Too many notifications"),
                ("/v1/{p}/notify", [{"notification": good, "accounts": [me]}, bad("type", "x")], 422,
                 "1.notification.type"),
                ("/v1/{p}/notify/broadcast", {"notification": {**good, "type": "x"}}, 422, "notification.type"),
            ]
            for path, payload, status, words in cases:
                refused(await post(stack, dapp, path.format(p=dapp.project_id), payload), status, words)
            r = await stack.http.post(f"{stack.notify_url}/{dapp.project_id}/notify", content=b"{not json",
                                      headers={**dapp.headers, "content-type": "application/json"})
            assert r.status_code == 422
            for headers in ({}, {"authorization": "Bearer wrong"}):
                r = await stack.http.post(f"{stack.notify_url}/{dapp.project_id}/notify",
                                          json={"notification": good, "accounts": [me]}, headers=headers)
                refused(r, 401, "secret")
            assert await db_snapshot(database_url) == before
            assert await alice.nothing(topic_of(alice.sub_key(dapp)), wait=0.3)


async def test_welcome_notification_on_a_first_subscribe(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        welcome = {"enabled": True, "type": dapp.types["news"], "title": "Welcome", "body": "glad you came",
                   "url": "https://x.test/start"}
        r = await post(stack, dapp, f"/v0/{dapp.project_id}/welcome-notification", welcome)
        assert r.status_code == 204, r.text
        async with Wallet(stack) as alice, Wallet(stack) as bob:
            await alice.register(dapp.domain)
            await alice.subscribe(dapp, ["alerts", "news"])
            first = (await alice.next_notification(dapp))["msg"]
            assert (first["title"], first["body"], first["url"], first["type"]) == (
                "Welcome", "glad you came", "https://x.test/start", dapp.types["news"])
            # subscribing again is not a first subscribe
            await alice.subscribe(dapp, ["news"])
            assert await alice.nothing(topic_of(alice.sub_key(dapp)), wait=0.5)
            # without the welcome's type in scope: no welcome
            await bob.register(dapp.domain)
            await bob.subscribe(dapp, ["alerts"])
            assert await bob.nothing(topic_of(bob.sub_key(dapp)), wait=0.5)
            # deleted and subscribed again: a new subscription, welcomed again
            await alice.delete(dapp)
            await alice.subscribe(dapp, ["news"])
            assert (await alice.next_notification(dapp))["msg"]["title"] == "Welcome"
            # disabled: nobody is welcomed
            r = await post(stack, dapp, f"/v0/{dapp.project_id}/welcome-notification", {**welcome, "enabled": False})
            assert r.status_code == 204, r.text
            await bob.delete(dapp)
            await bob.subscribe(dapp, ["news"])
            assert await bob.nothing(topic_of(bob.sub_key(dapp)), wait=0.5)
