"""The wallet SDK (``wcnotify.wallet.NotifyClient``) end to end over the real relay, keys server and notify
server, on SQLite and PostgreSQL: register, subscribe, receive, history, read, update, delete, several devices
of one account kept in step by watch, restarts, and what a hostile or flaky network does."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from wcnotify import spec
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.crypto import Ed25519KeyPair, encode_type0
from wcnotify.protocol.did import Account, did_web, encode_did_key
from wcnotify.protocol.jwt import NotifyMessageClaims
from wcnotify.wallet import (
    NoAnswerError,
    NotificationReceived,
    NotificationRejected,
    NotRegisteredError,
    SubscriptionsChanged,
    UnknownTypeError,
)

from .notify_stack import running_stack
from .wallet_devices import StackResolver, device, new_account, next_of


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

            async def publish(key: Ed25519KeyPair, msg_id: str, title: str) -> None:
                now = int(time.time())
                claims = NotifyMessageClaims(
                    iat=now, exp=now + 60, iss=encode_did_key(key.public_key), sub=Account.parse(account).did_pkh,
                    app=did_web(dapp.domain),
                    msg={"id": msg_id, "sent_at": now * 1000, "type": dapp.types["alerts"], "title": title,
                         "body": "b", "icon": "", "url": "", "is_read": False},
                )
                request = jsonrpc.Request(jsonrpc.payload_id(now * 1000, 1), spec.NOTIFY_MESSAGE.method,
                                          {"messageAuth": claims.sign(key)})
                await stack.relay_publish(sub.topic, encode_type0(sub.sym_key, jsonrpc.encode(request)),
                                          tag=spec.NOTIFY_MESSAGE.request_tag)

            with w.events() as events:
                await publish(Ed25519KeyPair.generate(), str(uuid.uuid4()), "forged")
                rejected = await next_of(events, NotificationRejected)
                assert "not by the app's key" in rejected.reason and rejected.topic == sub.topic

                result = await stack.send(dapp, [account], title="real")
                real = (await next_of(events, NotificationReceived)).notification
                assert real.title == "real" and result["sent"] == [account]
                # the same notification again (a relay redelivery, or a replay by someone on the topic)
                key = await stack.project_key(dapp)
                await publish(key, real.id, "real")
                await publish(key, str(uuid.uuid4()), "second")
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
