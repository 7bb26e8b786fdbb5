"""The refusal matrix of the notify server's wallet handlers, on SQLite and PostgreSQL: every request that
must be refused is answered with a JSON-RPC error whose message names its own cause, and the database is
exactly as before (subscribers, scopes, watchers, inbox). Also: replays change nothing twice."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from wcnotify import spec
from wcnotify.protocol.crypto import Ed25519KeyPair, topic_of
from wcnotify.protocol.did import did_web, encode_did_key

from .notify_stack import Dapp, RpcRefused, Wallet, db_snapshot, running_stack


async def update_with(wallet: Wallet, dapp: Dapp, *, key_of: Wallet | None = None,
                      signer: Ed25519KeyPair | None = None, rpc: spec.RpcSpec = spec.NOTIFY_UPDATE,
                      **claims: Any) -> dict[str, Any]:
    """A ``wc_notifyUpdate`` to all of the app's types (a change, if it were accepted) with claims overridden,
    sent on the subscription of ``key_of`` (default: the wallet's own)."""
    key = bytes.fromhex((key_of or wallet).subscriptions[dapp.domain]["symKey"])
    base = wallet.claims(act=spec.Act.NOTIFY_UPDATE, aud=dapp.auth_did, app=did_web(dapp.domain),
                         scp=" ".join(dapp.types.values()))
    base.update(claims)
    return await wallet.call(rpc, base, topic=topic_of(key), key=key, signer=signer)


async def test_refusal_matrix_changes_nothing(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp, other = await stack.create_dapp(), await stack.create_dapp()
        server_agreement, server_auth = await stack.server_keys()
        async with (
            Wallet(stack) as alice,
            Wallet(stack) as bob,  # another account, registered for the same app
            Wallet(stack, eth=alice.eth) as unregistered,  # alice's account, identity never registered
        ):
            await alice.register(dapp.domain)
            await bob.register(dapp.domain)
            await alice.subscribe(dapp, ["alerts"])
            await bob.subscribe(dapp, ["news"])
            await alice.watch(dapp.domain)
            unregistered.subscriptions = dict(alice.subscriptions)
            bob_key = bob.subscriptions[dapp.domain]["symKey"]
            now = int(time.time())
            before = await db_snapshot(database_url)

            def watch_with(wallet: Wallet, **claims: Any) -> Callable[[], Awaitable[Any]]:
                async def send() -> Any:
                    base = wallet.claims(act=spec.Act.NOTIFY_WATCH_SUBSCRIPTIONS, aud=encode_did_key(server_auth),
                                         app=did_web(dapp.domain))
                    base.update(claims)
                    return await wallet.call(spec.NOTIFY_WATCH_SUBSCRIPTIONS, base, topic=topic_of(server_agreement),
                                             receiver=server_agreement)
                return send

            cases: dict[str, tuple[Callable[[], Awaitable[Any]], str]] = {
                "forged signature": (
                    lambda: update_with(alice, dapp, signer=Ed25519KeyPair.generate()),
                    "JWT signature does not verify against its iss"),
                "expired": (
                    lambda: update_with(alice, dapp, iat=now - 7200, exp=now - 3600), "JWT has expired"),
                "future iat": (
                    lambda: update_with(alice, dapp, iat=now + 3600, exp=now + 3900), "JWT iat is in the future"),
                "wrong act": (
                    lambda: update_with(alice, dapp, act=spec.Act.NOTIFY_DELETE.value),
                    "JWT act must be 'notify_update', got 'notify_delete'"),
                "wrong aud": (
                    lambda: update_with(alice, dapp, aud=other.auth_did), "is not the expected audience"),
                "wrong app": (
                    lambda: update_with(alice, dapp, app=did_web(other.domain)),
                    "The requested app does not match the project's app domain"),
                "app not a did:web": (lambda: update_with(alice, dapp, app=dapp.domain), "app must be a did:web"),
                "unregistered identity": (
                    lambda: update_with(unregistered, dapp), f"identity key {unregistered.did} is not registered"),
                "ksu outside the allowlist": (
                    lambda: update_with(alice, dapp, ksu="https://keys.evil.example"),
                    "'https://keys.evil.example' is not one this notify server uses"),
                "sub is another account": (
                    lambda: update_with(alice, dapp, sub=bob.account.did_pkh),
                    "The identity key is registered for another account than sub"),
                "another account's subscription (update)": (
                    lambda: update_with(bob, dapp, key_of=alice), "The account does not own this subscription"),
                "another account's subscription (delete)": (
                    lambda: update_with(bob, dapp, key_of=alice, rpc=spec.NOTIFY_DELETE,
                                        act=spec.Act.NOTIFY_DELETE.value),
                    "The account does not own this subscription"),
                "another account's subscription (history)": (
                    lambda: update_with(bob, dapp, key_of=alice, rpc=spec.NOTIFY_GET_NOTIFICATIONS,
                                        act=spec.Act.NOTIFY_GET_NOTIFICATIONS.value, lmt=10, aft=None, urf=False),
                    "The account does not own this subscription"),
                "another account's subscription (mark read)": (
                    lambda: update_with(bob, dapp, key_of=alice, rpc=spec.NOTIFY_MARK_NOTIFICATIONS_AS_READ,
                                        act=spec.Act.NOTIFY_MARK_NOTIFICATIONS_AS_READ.value, all=True),
                    "The account does not own this subscription"),
                "missing params key": (
                    lambda: update_with(alice, dapp, rpc=dataclasses.replace(spec.NOTIFY_UPDATE, params_key="auth")),
                    "params.updateAuth must be a JWT string"),
                "limited CACAO for another app (subscribe)": (
                    lambda: alice.subscribe(other, ["alerts"]),
                    f"authorized for {dapp.domain} only, not {other.domain}"),
                "unregistered identity (subscribe)": (
                    lambda: unregistered.subscribe(dapp, ["news"]), "is not registered"),
                "subscribe to the wrong key": (
                    lambda: bob.subscribe(dapp, ["news"], aud=bob.did), "is not the expected audience"),
                "watch with the app's key as aud": (
                    watch_with(bob, aud=dapp.auth_did), "is not the expected audience"),
                "watch an unknown app": (
                    watch_with(bob, app=did_web("nobody.example")), "No app is registered for nobody.example"),
                "watch expired": (watch_with(bob, iat=now - 7200, exp=now - 3600), "JWT has expired"),
            }
            seen: dict[str, str] = {}
            for name, (send, message) in cases.items():
                with pytest.raises(RpcRefused) as refused:
                    await send()
                assert message in refused.value.message, f"{name}: {refused.value.message}"
                assert await db_snapshot(database_url) == before, f"{name} changed the database"
                seen[name] = refused.value.message
            # every cause has its own message: none matches another cause's text
            for name, text in seen.items():
                others = {m for _, m in cases.values() if cases[name][1] not in m and m not in cases[name][1]}
                assert not [m for m in others if m in text], f"{name}: {text}"
            assert bob.subscriptions[dapp.domain]["symKey"] == bob_key  # bob's own subscription is intact


async def test_replays_change_nothing_twice(database_url: str) -> None:
    """A relay retrying its webhook (the same event again) or a re-published ciphertext is handled once."""
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        async with Wallet(stack) as wallet:
            await wallet.register(dapp.domain)

            def scope() -> Awaitable[list[str]]:
                async def read() -> list[str]:
                    rows = (await db_snapshot(database_url))["subscriber_scopes"]
                    return sorted(r[1] for r in rows)
                return read()

            await wallet.subscribe(dapp, ["alerts"])
            subscribe = wallet.last_published
            await wallet.update(dapp, ["news"])
            first_update = wallet.last_published
            await wallet.update(dapp, ["alerts", "news"])
            both = sorted(dapp.types.values())
            assert await scope() == both

            # the relay retries the webhook for old requests: answered 204, nothing changes
            for replayed in (subscribe, first_update):
                assert replayed is not None
                response = await stack.redeliver(*replayed)
                assert response.status_code == 204, response.text
                assert await scope() == both
            # the wallet re-publishes an old update's identical ciphertext through the relay: nothing changes
            assert first_update is not None
            topic, message, tag = first_update
            await wallet.relay.publish(topic, message, ttl=spec.NOTIFY_UPDATE.request_ttl, tag=tag)
            await wallet.history(dapp)  # handled after the re-publish, if that was handled at all
            assert await scope() == both

            # delete, resubscribe, then the old delete again: the new subscription survives
            old_key = wallet.subscriptions[dapp.domain]["symKey"]
            await wallet.delete(dapp)
            delete = wallet.last_published
            assert delete is not None
            new_key = (await wallet.subscribe(dapp, ["news"]))["sbs"][0]["symKey"]
            assert new_key != old_key
            state = await db_snapshot(database_url)
            assert (await stack.redeliver(*delete)).status_code == 204
            await wallet.relay.publish(delete[0], delete[1], ttl=spec.NOTIFY_DELETE.request_ttl, tag=delete[2])
            await wallet.history(dapp)
            assert await db_snapshot(database_url) == state
            assert [r[5] for r in state["subscribers"]] == [topic_of(bytes.fromhex(new_key))]

            # a JWT valid "forever" (exp far beyond 64 bits) is refused with a reason and remembered, not a
            # server fault (its insert once overflowed the column and the relay retried it until its TTL)
            key = bytes.fromhex(new_key)
            claims = wallet.claims(act=spec.Act.NOTIFY_GET_NOTIFICATIONS, aud=dapp.auth_did, app=did_web(dapp.domain),
                                   lmt=5, aft=None, urf=False, exp=1.5e300)
            with pytest.raises(RpcRefused, match="too far in the future"):
                await wallet.call(spec.NOTIFY_GET_NOTIFICATIONS, claims, topic=topic_of(key), key=key)
            assert (await stack.redeliver(*wallet.last_published)).status_code == 204
