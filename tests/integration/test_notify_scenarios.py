"""The wallet-side scenarios of reference-server.md §5 through the real relay, keys server and notify server,
on SQLite and PostgreSQL: subscribe, repeat subscribe, update, delete then resubscribe, watch under mjv 0
and 1, app and all-apps watchers, the 26th watcher, chain-agnostic accounts, limited vs all-apps CACAOs."""

from __future__ import annotations

import time

import pytest

from wcnotify import spec
from wcnotify.protocol.crypto import Ed25519KeyPair, derive_sym_key, topic_of
from wcnotify.protocol.did import Account, encode_did_key

from .notify_stack import RpcRefused, Wallet, db_snapshot, random_type_id, running_stack


def only(sbs: list[dict[str, object]]) -> dict[str, object]:
    assert len(sbs) == 1, sbs
    return sbs[0]


async def test_subscribe_repeat_update_delete_resubscribe(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp, other = await stack.create_dapp(), await stack.create_dapp()
        async with Wallet(stack) as wallet:
            await wallet.register(dapp.domain)

            first = await wallet.subscribe(dapp, ["alerts"])
            entry = only(first["sbs"])
            assert entry["appDomain"] == dapp.domain and entry["scope"] == [dapp.types["alerts"]]
            assert entry["appAuthenticationKey"] == dapp.auth_did and entry["account"] == str(wallet.account)
            assert entry["unreadNotificationCount"] == 0
            assert abs(entry["expiry"] - (time.time() + spec.NOTIFY_SUBSCRIPTION_TTL)) < 60
            assert first["sub"] == wallet.account.did_pkh and first["aud"] == wallet.did
            z = bytes.fromhex(first[spec.NOTIFY_SUBSCRIBE_KEY_CLAIM])
            assert derive_sym_key(wallet.last_sender.private_key, z).hex() == entry["symKey"]

            # repeat subscribe: same key, scope replaced, and no new Z (the key was not re-derived)
            again = await wallet.subscribe(dapp, ["news"])
            assert spec.NOTIFY_SUBSCRIBE_KEY_CLAIM not in again
            assert only(again["sbs"])["symKey"] == entry["symKey"]
            assert only(again["sbs"])["scope"] == [dapp.types["news"]]
            state = await db_snapshot(database_url)
            assert len(state["subscribers"]) == 1 and len(state["subscriber_scopes"]) == 1

            updated = await wallet.update(dapp, ["alerts", "news"])
            assert updated["act"] == "notify_update_response" and updated["iss"] == dapp.auth_did
            assert only(updated["sbs"])["scope"] == sorted(dapp.types.values())
            assert only((await wallet.update(dapp, []))["sbs"])["scope"] == []
            state = await db_snapshot(database_url)

            # scope must name this app's types
            with pytest.raises(RpcRefused, match="Unknown notification type"):
                await wallet.on_subscription(dapp, spec.NOTIFY_UPDATE, spec.Act.NOTIFY_UPDATE, scp=random_type_id())
            with pytest.raises(RpcRefused, match="Unknown notification type"):
                await wallet.on_subscription(dapp, spec.NOTIFY_UPDATE, spec.Act.NOTIFY_UPDATE,
                                             scp=other.types["alerts"])
            with pytest.raises(RpcRefused, match="scp must be space-separated notification type ids"):
                await wallet.on_subscription(dapp, spec.NOTIFY_UPDATE, spec.Act.NOTIFY_UPDATE, scp="alerts")
            with pytest.raises(RpcRefused, match="Unknown notification type"):
                await wallet.subscribe(dapp, [], scp=f"{dapp.types['news']} {random_type_id()}")
            assert await db_snapshot(database_url) == state  # scope unchanged by the refusals

            deleted = await wallet.delete(dapp)
            assert deleted["act"] == "notify_delete_response" and deleted["sbs"] == []
            state = await db_snapshot(database_url)
            assert state["subscribers"] == [] and state["subscriber_scopes"] == []

            fresh = await wallet.subscribe(dapp, ["alerts"])
            assert spec.NOTIFY_SUBSCRIBE_KEY_CLAIM in fresh
            assert only(fresh["sbs"])["symKey"] != entry["symKey"]
            assert only(fresh["sbs"])["scope"] == [dapp.types["alerts"]]


async def test_watchers_mjv_and_app_filters(database_url: str) -> None:
    """Who hears a change. "Heard nothing" is shown without sleeping: a watcher's next change is a later one
    (the relay delivers a topic's messages in order, so an earlier change would have come first)."""
    async with running_stack(database_url) as stack:
        app1, app2 = await stack.create_dapp(), await stack.create_dapp()
        server_did = encode_did_key((await stack.server_keys())[1])
        async with (
            Wallet(stack) as a,  # watches app1, and makes changes
            Wallet(stack, eth=a.eth) as b,  # same account, another device: watches all apps
            Wallet(stack, eth=a.eth) as c,  # same account: watches app2 only
            Wallet(stack) as stranger,  # another account watching all apps
        ):
            await a.register(app1.domain)
            await b.register("wallet.example", all_apps=True)
            await c.register(app2.domain)
            await stranger.register("wallet.example", all_apps=True)
            assert (await a.watch(app1.domain))["sbs"] == []
            assert (await b.watch())["sbs"] == []
            assert (await c.watch(app2.domain))["sbs"] == []
            assert (await stranger.watch())["sbs"] == []
            assert (await a.watch(app1.domain))["act"] == "notify_watch_subscriptions_response"  # re-watch is fine

            # mjv "0": every watcher of the app is told, the one that made the change included
            answer = await a.subscribe(app1, ["alerts"], mjv="0")
            for watcher in (a, b):
                change = await watcher.next_change()
                assert change["act"] == "notify_subscriptions_changed" and change["iss"] == server_did
                assert change["aud"] == watcher.did and change["sub"] == a.account.did_pkh
                assert change["sbs"] == answer["sbs"]

            # mjv "1": the caller's own view is in the answer; only the other watchers are told (a: see below)
            updated = await a.update(app1, ["alerts", "news"])
            assert only((await b.next_change())["sbs"])["scope"] == only(updated["sbs"])["scope"]

            # b (all apps) subscribes to app2: c (app2) is told, and heard nothing of app1's changes before
            await b.subscribe(app2, ["news"])
            assert [e["appDomain"] for e in (await c.next_change())["sbs"]] == [app2.domain]

            # watch answers: an app watcher sees its app, the all-apps watcher every app
            assert [e["appDomain"] for e in (await a.watch(app1.domain))["sbs"]] == [app1.domain]
            assert [e["appDomain"] for e in (await c.watch(app2.domain))["sbs"]] == [app2.domain]
            everything = (await b.watch())["sbs"]
            assert sorted(e["appDomain"] for e in everything) == sorted([app1.domain, app2.domain])
            b.subscriptions.update({e["appDomain"]: e for e in everything})  # b learns app1's key from the watch

            # a's next change is b's update of app1: a heard neither its own mjv-1 update nor app2's subscribe
            await b.update(app1, ["news"])
            assert only((await a.next_change())["sbs"])["scope"] == [app1.types["news"]]
            # b's next change is a's delete: b heard neither its own subscribe nor its own update
            await a.delete(app1)
            assert [e["appDomain"] for e in (await b.next_change())["sbs"]] == [app2.domain]
            # the other account heard nothing of all this
            assert await stranger.nothing(topic_of(stranger.watch_key), wait=0.3)
            assert (await stranger.watch())["sbs"] == []


async def test_26th_watcher_is_refused_all_apps_watchers_included(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        async with Wallet(stack) as wallet, Wallet(stack) as other_account:
            first_identity = wallet.identity
            for n in range(spec.NOTIFY_MAX_WATCHERS_PER_ACCOUNT):
                if n:
                    wallet.identity = Ed25519KeyPair.generate()  # another device of the same account
                all_apps = n % 5 == 0  # 5 of the 25 watch all apps
                await wallet.register(dapp.domain, all_apps=all_apps)
                await wallet.watch(None if all_apps else dapp.domain)
            before = await db_snapshot(database_url)
            assert len(before["watchers"]) == spec.NOTIFY_MAX_WATCHERS_PER_ACCOUNT
            assert sum(w[3] is None for w in before["watchers"]) == 5  # project NULL: all apps

            wallet.identity = Ed25519KeyPair.generate()
            await wallet.register(dapp.domain, all_apps=True)
            for app in (dapp.domain, None):
                with pytest.raises(RpcRefused, match="Subscription watcher limit reached"):
                    await wallet.watch(app)
            assert await db_snapshot(database_url) == before

            # an existing watcher renews itself; another account has its own 25
            wallet.identity = first_identity
            await wallet.watch(None)
            await other_account.register(dapp.domain)
            await other_account.watch(dapp.domain)
            assert len((await db_snapshot(database_url))["watchers"]) == spec.NOTIFY_MAX_WATCHERS_PER_ACCOUNT + 1


async def test_chain_agnostic_accounts(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        async with (
            Wallet(stack) as mainnet,
            Wallet(stack, eth=mainnet.eth, chain="eip155:10") as optimism,
            Wallet(stack, eth=mainnet.eth, chain="eip155:137") as polygon,
        ):
            for w in (mainnet, optimism, polygon):
                await w.register(dapp.domain)
            await mainnet.watch(dapp.domain)
            entry = only((await mainnet.subscribe(dapp, ["alerts"]))["sbs"])
            assert entry["account"] == f"eip155:1:{mainnet.eth.address}"

            # the same key on eip155:10 updates the eip155:1 subscription; answers echo the caller's chain
            optimism.subscriptions = dict(mainnet.subscriptions)
            updated = only((await optimism.update(dapp, ["alerts", "news"]))["sbs"])
            assert updated["account"] == f"eip155:10:{mainnet.eth.address}"
            assert updated["symKey"] == entry["symKey"]
            change = only((await mainnet.next_change())["sbs"])  # the eip155:1 watcher sees its own account
            assert change["account"] == str(mainnet.account) and change["scope"] == updated["scope"]
            assert only((await optimism.watch(dapp.domain))["sbs"])["account"] == str(optimism.account)
            assert (await optimism.history(dapp))["nfs"] == []

            # a lowercase address on a third chain is the same subscriber: subscribe keeps the key
            polygon.account = Account.parse(f"eip155:137:{mainnet.eth.address.lower()}")
            again = await polygon.subscribe(dapp, ["news"])
            assert spec.NOTIFY_SUBSCRIBE_KEY_CLAIM not in again
            assert only(again["sbs"])["symKey"] == entry["symKey"]
            assert only(again["sbs"])["account"] == f"eip155:137:{mainnet.eth.address.lower()}"
            state = await db_snapshot(database_url)
            assert len(state["subscribers"]) == 1
            await polygon.delete(dapp)
            assert (await db_snapshot(database_url))["subscribers"] == []


async def test_limited_and_all_apps_cacaos(database_url: str) -> None:
    """Statement CACAOs and ReCap CACAOs (identity-keys' two ways), one app or all apps."""
    async with running_stack(database_url) as stack:
        app1, app2 = await stack.create_dapp(), await stack.create_dapp()
        for recaps in (False, True):
            async with Wallet(stack) as limited, Wallet(stack) as unlimited:
                await limited.register(app1.domain, recaps=recaps)
                await unlimited.register("wallet.example", all_apps=True, recaps=recaps)

                await limited.subscribe(app1, ["alerts"])
                await limited.watch(app1.domain)
                await limited.history(app1)
                before = await db_snapshot(database_url)
                refused = f"authorized for {app1.domain} only, not {app2.domain}"
                with pytest.raises(RpcRefused, match=refused):
                    await limited.subscribe(app2, ["alerts"])
                with pytest.raises(RpcRefused, match=refused):
                    await limited.watch(app2.domain)
                with pytest.raises(RpcRefused, match="Watching all apps needs an identity authorized for all apps"):
                    await limited.watch(None)
                assert await db_snapshot(database_url) == before

                for dapp in (app1, app2):
                    await unlimited.subscribe(dapp, ["news"])
                    await unlimited.update(dapp, ["alerts"])
                watched = await unlimited.watch(None)
                assert sorted(e["appDomain"] for e in watched["sbs"]) == sorted([app1.domain, app2.domain])
                assert [e["appDomain"] for e in (await unlimited.watch(app2.domain))["sbs"]] == [app2.domain]
