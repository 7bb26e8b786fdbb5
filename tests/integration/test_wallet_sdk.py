"""The wallet SDK (``wcnotify.wallet.NotifyClient``) end to end over the real relay, keys server and notify
server, on SQLite and PostgreSQL: register, subscribe, receive, history, read, update, delete, several devices
of one account kept in step by watch, restarts, and what a hostile or flaky network does."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from wcnotify import spec
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.crypto import Ed25519KeyPair, decrypt
from wcnotify.protocol.did import Account, encode_did_key
from wcnotify.protocol.jwt import NotifyMessageClaims, NotifyMessageResponseClaims, decode_jwt, encode_jwt
from wcnotify.relay.client import RelayClient
from wcnotify.wallet import (
    ForgedAnswerError,
    NoAnswerError,
    NotificationReceived,
    NotificationRejected,
    NotRegisteredError,
    SubscriptionsChanged,
    UnknownTypeError,
)

from .notify_stack import running_stack
from .wallet_devices import StackResolver, device, new_account, next_of, publish_notification


async def test_one_device_subscribes_receives_reads_updates_and_deletes(database_url: str, tmp_path: Path) -> None:
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with device(stack, tmp_path / "w1.db", resolver) as w1:
            with pytest.raises(NotRegisteredError):
                await w1.subscribe(account, dapp.domain)
            await w1.register_with_key(account, eth.key, dapp.domain)
            assert await w1.is_registered(account)
            with pytest.raises(UnknownTypeError, match="alerts, news"):
                await w1.subscribe(account, dapp.domain, ["weather"])

            sub = await w1.subscribe(account, dapp.domain, ["alerts"])
            assert sub.scope == (dapp.types["alerts"],) and sub.app_domain == dapp.domain
            assert sub.app_authentication_key == dapp.auth_did
            assert [s.topic for s in await w1.subscriptions(account)] == [sub.topic]

            with w1.events() as events:
                result = await stack.send(dapp, [account], "alerts", title="gm", body="first")
                assert result["sent"] == [account]
                received = await next_of(events, NotificationReceived)
            n = received.notification
            assert (n.title, n.body, n.topic, n.type) == ("gm", "first", sub.topic, dapp.types["alerts"])
            assert [x.id for x in await w1.notifications(dapp.domain)] == [n.id]

            page = await w1.history(dapp.domain)
            assert [x.id for x in page.notifications] == [n.id] and not page.has_more
            await w1.mark_read(dapp.domain, [n.id])
            assert await w1.notifications(dapp.domain, unread_only=True) == []
            assert (await w1.history(dapp.domain)).notifications[0].is_read

            updated = await w1.update(dapp.domain, ["alerts", "news"])
            assert set(updated.scope) == set(dapp.types.values()) and updated.topic == sub.topic

            await w1.delete(dapp.domain)
            assert await w1.subscriptions(account) == []
            r = await stack.http.post(f"{stack.notify_url}/v1/{dapp.project_id}/subscribers",
                                      json={"accounts": [account]}, headers=dapp.headers)
            assert r.status_code == 200 and r.json() == {}, r.text  # the server forgot it too
            # at once again, and the same scope twice: equal requests within a second are distinct JWTs (jti), so
            # the server's once-per-JWT replay defence does not refuse them
            again = await w1.subscribe(account, dapp.domain, ["alerts"])
            assert (await w1.update(dapp.domain, ["alerts"])).topic == again.topic
            assert (await w1.update(dapp.domain, ["alerts"])).topic == again.topic


async def test_devices_of_one_account_stay_in_step_through_watch(database_url: str, tmp_path: Path) -> None:
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with device(stack, tmp_path / "w1.db", resolver) as w1, \
                device(stack, tmp_path / "w2.db", resolver) as w2:
            await w1.register_with_key(account, eth.key, dapp.domain)
            await w2.register_with_key(account, eth.key, dapp.domain)
            with w2.events() as w2_events:
                sub = await w1.subscribe(account, dapp.domain)
                changed = await next_of(w2_events, SubscriptionsChanged)
            assert [s.topic for s in changed.subscriptions] == [sub.topic] and changed.source == "watch"

            with w1.events() as e1, w2.events() as e2:
                await stack.send(dapp, [account], "news", title="both")
                got1, got2 = await asyncio.gather(next_of(e1, NotificationReceived), next_of(e2, NotificationReceived))
            assert got1.notification.id == got2.notification.id

            # a device added later, same account: the watch answer brings every subscription
            async with device(stack, tmp_path / "w3.db", resolver) as w3:
                await w3.register_with_key(account, eth.key, dapp.domain)
                assert [s.topic for s in await w3.subscriptions(account)] == [sub.topic]

            with w1.events() as e1:
                await w2.delete(dapp.domain)
                gone = await next_of(e1, SubscriptionsChanged)
            assert gone.subscriptions == () and await w1.subscriptions(account) == []


async def test_state_survives_a_restart_and_nothing_is_shown_twice(database_url: str, tmp_path: Path) -> None:
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        path = tmp_path / "wallet.db"
        async with device(stack, path, resolver) as w1:
            await w1.register_with_key(account, eth.key, dapp.domain)
            sub = await w1.subscribe(account, dapp.domain)
            with w1.events() as events:
                await stack.send(dapp, [account], title="before")
                first = (await next_of(events, NotificationReceived)).notification
        # sent while the device is off: the relay keeps it; the restarted device gets it once
        notification_id = str(uuid.uuid4())
        await stack.send(dapp, [account], title="while away", notification_id=notification_id)
        assert (await stack.delivered(dapp, notification_id, 1))["published"] == 1
        async with device(stack, path, resolver) as w1:
            assert [s.topic for s in await w1.subscriptions(account)] == [sub.topic]
            with w1.events() as events:  # it may have arrived during start(), before this stream existed
                if not any(n.title == "while away" for n in await w1.notifications(dapp.domain)):
                    assert (await next_of(events, NotificationReceived)).notification.title == "while away"
                await asyncio.sleep(0.3)  # room for a second copy, which must not be stored
            titles = [n.title for n in await w1.notifications(dapp.domain)]
            assert sorted(titles) == ["before", "while away"], titles
            assert first.id in {n.id for n in await w1.notifications(dapp.domain)}


async def test_forged_and_repeated_notifications(database_url: str, tmp_path: Path) -> None:
    """A notification not signed by the app's key is dropped and reported; one delivered twice shows once."""
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with device(stack, tmp_path / "w.db", resolver) as w:
            await w.register_with_key(account, eth.key, dapp.domain)
            sub = await w.subscribe(account, dapp.domain)

            with w.events() as events:
                await publish_notification(stack, sub, Ed25519KeyPair.generate(), title="forged")
                rejected = await next_of(events, NotificationRejected)
                assert "not by the app's key" in rejected.reason and rejected.topic == sub.topic

                result = await stack.send(dapp, [account], title="real")
                real = (await next_of(events, NotificationReceived)).notification
                assert real.title == "real" and result["sent"] == [account]
                # the same notification again (a relay redelivery, or a replay by someone on the topic)
                key = await stack.project_key(dapp)
                await publish_notification(stack, sub, key, msg_id=real.id, title="real")
                await publish_notification(stack, sub, key, title="second")
                assert (await next_of(events, NotificationReceived)).notification.title == "second"
            assert sorted(n.title for n in await w.notifications(dapp.domain)) == ["real", "second"]


async def test_history_is_bounded_on_the_device(database_url: str, tmp_path: Path) -> None:
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with device(stack, tmp_path / "w.db", resolver, history_cap=3) as w:
            await w.register_with_key(account, eth.key, dapp.domain)
            await w.subscribe(account, dapp.domain)
            with w.events() as events:
                for i in range(5):
                    await stack.send(dapp, [account], title=f"n{i}")
                    await next_of(events, NotificationReceived)
            assert [n.title for n in await w.notifications(dapp.domain)] == ["n4", "n3", "n2"]


async def test_discover_an_app_in_the_registry_and_subscribe_from_it(database_url: str, tmp_path: Path) -> None:
    """No resolver at all: the registry entry carries the app's did.json and types."""
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp(types=("launches",))
        hidden = await stack.create_dapp()
        r = await stack.http.patch(f"{stack.notify_url}/v1/{dapp.project_id}/project",
                                   json={"listed": True, "name": "Rocket Dapp"}, headers=dapp.headers)
        assert r.status_code == 200, r.text
        eth, account = new_account()
        async with device(stack, tmp_path / "w.db") as w:
            await w.register_with_key(account, eth.key, dapp.domain)
            apps = await w.apps()
            assert [a.domain for a in apps] == [dapp.domain] and hidden.domain not in {a.domain for a in apps}
            (app,) = await w.apps("rocket")
            assert app.name == "Rocket Dapp" and [t.name for t in app.types] == ["launches"]
            sub = await w.subscribe(account, app)
            assert sub.scope == (dapp.types["launches"],)
            with w.events() as events:
                await stack.send(dapp, [account], "launches", title="liftoff")
                assert (await next_of(events, NotificationReceived)).notification.title == "liftoff"


async def test_unregister_forgets_the_account(database_url: str, tmp_path: Path) -> None:
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with device(stack, tmp_path / "w.db", resolver) as w:
            await w.register_with_key(account, eth.key, dapp.domain)
            await w.subscribe(account, dapp.domain)
            await w.unregister(account)
            assert not await w.is_registered(account) and await w.subscriptions(account) == []
            with pytest.raises(NotRegisteredError):
                await w.subscribe(account, dapp.domain)
            # the keys server no longer vouches for the old key: the server refuses what it would sign
            await w.register_with_key(account, eth.key, dapp.domain)
            assert await w.subscribe(account, dapp.domain)


async def test_a_silent_notify_server_is_a_clear_error(database_url: str, tmp_path: Path) -> None:
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with device(stack, tmp_path / "w.db", resolver, response_timeout=1.0) as w:
            await w.register_with_key(account, eth.key, dapp.domain)
            await w.app_types(dapp.domain)
            await resolver.resolve(dapp.domain)
            await stack.notify.stop()
            with pytest.raises(NoAnswerError, match="no answer from the notify server"):
                await w.subscribe(account, dapp.domain)
            assert await w.subscriptions(account) == []


async def test_tampered_and_misaddressed_notifications_are_dropped(database_url: str, tmp_path: Path) -> None:
    """Signed with the app's own key, yet wrong: a payload altered after signing, one about another account, one
    claiming another app. Each is dropped with its own reason and nothing is stored; the same key with nothing
    altered is shown (so the three were refused for what was wrong in them, not for the key)."""
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        _, stranger = new_account()
        async with device(stack, tmp_path / "w.db", resolver) as w:
            await w.register_with_key(account, eth.key, dapp.domain)
            sub = await w.subscribe(account, dapp.domain)
            key = await stack.project_key(dapp)
            cases: list[tuple[dict[str, Any], str]] = [
                ({"tamper": True}, "signature does not verify"),
                ({"account": stranger}, "addressed to another account"),
                ({"app_domain": "elsewhere.example.com"}, "claims to come from did:web:elsewhere.example.com"),
            ]
            with w.events() as events:
                for options, reason in cases:
                    await publish_notification(stack, sub, key, title="bad", **options)
                    rejected = await next_of(events, NotificationRejected)
                    assert reason in rejected.reason and rejected.topic == sub.topic, rejected
                good = await publish_notification(stack, sub, key, title="good")
                assert (await next_of(events, NotificationReceived)).notification.id == good
            assert [n.title for n in await w.notifications(dapp.domain)] == ["good"]


async def test_a_subscription_key_other_than_the_derived_one_is_refused(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's check: P = HKDF(DH(Y, Z)) must be the answer's symKey. A server that holds the app's key but
    names a key of its own choosing (so it, not only the dapp, could read and forge the subscription's
    notifications) is refused and nothing is stored. Re-subscribing an existing subscription, where the server
    legitimately sends no Z, is accepted."""
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with device(stack, tmp_path / "w.db", resolver) as w:
            await w.register_with_key(account, eth.key, dapp.domain)
            app_key = await stack.project_key(dapp)
            honest = w.request
            seen: list[dict[str, Any]] = []
            forged: dict[str, Any] = {}  # what the malicious server puts in its answer

            async def malicious(rpc: spec.RpcSpec, token: str, **options: Any) -> str:
                answer = await honest(rpc, token, **options)
                claims = dict(decode_jwt(answer).claims)
                seen.append(claims)
                if rpc is spec.NOTIFY_SUBSCRIBE:  # the real answer, altered and re-signed with the app's key
                    claims["sbs"] = [{**entry, **forged.get("entry", {})} for entry in claims["sbs"]]
                    claims.update(forged.get("claims", {}))
                return encode_jwt(claims, app_key)

            monkeypatch.setattr(w, "request", malicious)
            forged["entry"] = {"symKey": os.urandom(32).hex()}
            with pytest.raises(ForgedAnswerError, match="not the one derived from Y and the server's Z"):
                await w.subscribe(account, dapp.domain)
            assert spec.NOTIFY_SUBSCRIBE_KEY_CLAIM in seen[-1]
            assert await w.subscriptions(account) == []
            forged.clear()
            forged["claims"] = {spec.NOTIFY_SUBSCRIBE_KEY_CLAIM: 12345}  # a Z that cannot be checked is no Z
            with pytest.raises(ForgedAnswerError, match="publicKey is not a hex string"):
                await w.subscribe(account, dapp.domain)
            assert await w.subscriptions(account) == []

            monkeypatch.undo()
            sub = await w.subscribe(account, dapp.domain)  # renews the server's subscription: no Z this time
            assert [s.topic for s in await w.subscriptions(account)] == [sub.topic]


async def test_each_notification_is_acknowledged_with_notify_message_response(
    database_url: str, tmp_path: Path
) -> None:
    """A raw relay peer on the subscription topic sees, for every ``wc_notifyMessage``, the wallet's
    ``notify_message_response`` (tag 4003) with the same JSON-RPC id, signed by the device's identity key for
    the app's key and this account."""
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with device(stack, tmp_path / "w.db", resolver) as w, RelayClient(stack.relay.ws_url) as peer:
            await w.register_with_key(account, eth.key, dapp.domain)
            sub = await w.subscribe(account, dapp.domain)
            await peer.subscribe(sub.topic)
            stored = await w.store.get_key(f"identity:{account}")
            assert stored is not None
            identity = encode_did_key(Ed25519KeyPair.from_seed(stored[0]).public_key)
            with w.events() as events:
                for title in ("one", "two"):
                    await stack.send(dapp, [account], title=title)
                received = {(await next_of(events, NotificationReceived)).notification.id for _ in range(2)}

            rpc = spec.NOTIFY_MESSAGE
            requests: dict[jsonrpc.JsonRpcId, str] = {}  # JSON-RPC id -> msg.id
            acks: dict[jsonrpc.JsonRpcId, NotifyMessageResponseClaims] = {}
            deadline = time.monotonic() + 10
            while len(requests) < 2 or acks.keys() != requests.keys():
                message = await peer.next_message(timeout=max(0.01, deadline - time.monotonic()))
                parsed = jsonrpc.parse_message(decrypt(message.message, sub.sym_key))
                if message.tag == rpc.request_tag and isinstance(parsed, jsonrpc.Request):
                    claims = NotifyMessageClaims.verify(parsed.params["messageAuth"], now=int(time.time()))
                    requests[parsed.id] = str(claims.msg["id"])
                elif message.tag == rpc.response_tag and isinstance(parsed, jsonrpc.Result):
                    acks[parsed.id] = NotifyMessageResponseClaims.verify(
                        parsed.result[rpc.result_key], now=int(time.time()), aud=dapp.auth_did)
            assert set(requests.values()) == received
            for ack in acks.values():
                assert ack.iss == identity and ack.sub == Account.parse(account).did_pkh and ack.app == sub.app


async def test_history_pages_and_read_state_across_devices(database_url: str, tmp_path: Path) -> None:
    """``history(limit, after, unread_first)`` pages the server's inbox in both orders; a read state set on one
    device reaches another's local inbox through its history refresh; ``mark_read()`` (all) reaches the server."""
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with device(stack, tmp_path / "a.db", resolver) as a, device(stack, tmp_path / "b.db", resolver) as b:
            await a.register_with_key(account, eth.key, dapp.domain)
            await a.subscribe(account, dapp.domain)
            await b.register_with_key(account, eth.key, dapp.domain)  # the watch answer brings the subscription
            with a.events() as ea, b.events() as eb:
                for i in range(5):
                    await stack.send(dapp, [account], title=f"n{i}")
                    await asyncio.gather(next_of(ea, NotificationReceived), next_of(eb, NotificationReceived))

            full = (await a.history(dapp.domain, limit=50, unread_first=False)).notifications
            assert [n.title for n in full] == ["n4", "n3", "n2", "n1", "n0"]  # newest first
            ids = [n.id for n in full]

            async def pages(device_: Any, limit: int, unread_first: bool) -> list[list[str]]:
                out: list[list[str]] = []
                after = None
                while True:
                    page = await device_.history(dapp.domain, limit=limit, after=after, unread_first=unread_first)
                    out.append([n.id for n in page.notifications])
                    if not page.has_more:
                        return out
                    after = out[-1][-1]

            assert await pages(a, 2, False) == [ids[0:2], ids[2:4], ids[4:5]]
            await a.mark_read(dapp.domain, [ids[1], ids[3]])
            read = {ids[1], ids[3]}
            unread_order = [i for i in ids if i not in read] + [i for i in ids if i in read]
            assert await pages(a, 2, True) == [unread_order[0:2], unread_order[2:4], unread_order[4:5]]
            assert await pages(a, 2, False) == [ids[0:2], ids[2:4], ids[4:5]]
            first = await a.history(dapp.domain, limit=3, unread_first=True)
            assert first.has_more and not first.has_more_unread  # the three unread were all on this page
            assert [n.is_read for n in first.notifications] == [False, False, False]

            # b received all five over the relay, unread; its history refresh brings a's read state home
            assert len(await b.notifications(dapp.domain, unread_only=True)) == 5
            await b.history(dapp.domain, limit=50)
            assert {n.id for n in await b.notifications(dapp.domain, unread_only=True)} == set(ids) - read

            await b.mark_read(dapp.domain)  # all of them, on the server
            assert await b.notifications(dapp.domain, unread_only=True) == []
            on_server = (await a.history(dapp.domain, limit=50, unread_first=False)).notifications
            assert [n.id for n in on_server] == ids and all(n.is_read for n in on_server)
            assert await a.notifications(dapp.domain, unread_only=True) == []
