"""Several wallet devices of one account through the real relay, keys server and notify server (SQLite and
PostgreSQL): a delete made on a device that learned the subscription through Sync reaches every device, three
devices receive one notification, a fresh device recovers every subscription, concurrent writes to one Sync
key converge on the later one, and the keeper renews a watch the server dropped."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import pytest
from sqlalchemy import delete

from wcnotify import spec
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.did import encode_did_key
from wcnotify.protocol.sync import SyncDel, SyncSet
from wcnotify.relay.server import RelayConfig, RelayServer
from wcnotify.storage import create_engine
from wcnotify.storage.tables import watchers
from wcnotify.wallet import NotificationReceived, NotifyClient, NotRegisteredError

from .notify_stack import running_stack
from .wallet_devices import (
    StackResolver,
    device,
    new_account,
    next_of,
    publish_notification,
    publish_record,
    sync_signature,
    until,
    until_following,
)

SUBS = spec.SYNC_STORE_PUSH_SUBSCRIPTION


async def nothing_received(devices: list[NotifyClient], wait: float = 1.0) -> None:
    """No device reports a notification within ``wait`` seconds."""
    streams = [d.events() for d in devices]
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(next_of(s, NotificationReceived, wait) for s in streams)), wait)
    finally:
        for s in streams:
            s.close()


async def test_a_delete_on_a_device_that_learned_it_through_sync_reaches_every_device(
    database_url: str, tmp_path: Path
) -> None:
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        signature = sync_signature(eth.key, account)
        async with device(stack, tmp_path / "w1.db", resolver) as w1, \
                device(stack, tmp_path / "wx.db", resolver) as wx, device(stack, tmp_path / "w3.db") as w3:
            await w1.register_with_key(account, eth.key, dapp.domain)
            for w in (w1, wx, w3):
                await w.enable_sync(account, signature)
            sub = await w1.subscribe(account, dapp.domain)
            await until_following(wx, account, {sub.topic})
            await until_following(w3, account, {sub.topic})

            # wx knows the subscription (through Sync) but has no identity key to sign a delete with
            with pytest.raises(NotRegisteredError, match=r"through Sync only.*register"):
                await wx.delete(dapp.domain)
            assert [s.topic for s in await wx.subscriptions(account)] == [sub.topic]

            await wx.register_with_key(account, eth.key, dapp.domain)  # its own identity key
            await wx.delete(dapp.domain)
            for w in (w1, wx, w3):  # w3 has no watch: only Sync's wc_syncDel can tell it
                await until_following(w, account, set())
            r = await stack.http.post(f"{stack.notify_url}/v1/{dapp.project_id}/subscribers",
                                      json={"accounts": [account]}, headers=dapp.headers)
            assert r.status_code == 200 and r.json() == {}, r.text

            assert (await stack.send(dapp, [account], title="after the delete"))["sent"] == []
            # and no device still listens on the old topic: a notification published there by the app's key
            # itself is not received
            await publish_notification(stack, sub, await stack.project_key(dapp), title="on the old topic")
            await nothing_received([w1, wx, w3])
            for w in (w1, wx, w3):
                assert await w.notifications() == []


async def test_three_devices_receive_and_a_fresh_device_recovers_every_subscription(
    database_url: str, tmp_path: Path
) -> None:
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        first, second = resolver.add(await stack.create_dapp()), resolver.add(await stack.create_dapp())
        eth, account = new_account()
        signature = sync_signature(eth.key, account)
        async with device(stack, tmp_path / "w1.db", resolver) as w1, device(stack, tmp_path / "w2.db") as w2, \
                device(stack, tmp_path / "w3.db") as w3:
            await w1.register_with_key(account, eth.key, first.domain)
            for w in (w1, w2, w3):
                await w.enable_sync(account, signature)
            topics = {(await w1.subscribe(account, first.domain)).topic,
                      (await w1.subscribe(account, second.domain)).topic}
            await until_following(w2, account, topics)
            await until_following(w3, account, topics)

            streams = [w.events() for w in (w1, w2, w3)]
            await stack.send(first, [account], title="to three devices")
            got = await asyncio.gather(*(next_of(s, NotificationReceived) for s in streams))
            for s in streams:
                s.close()
            assert len({g.notification.id for g in got}) == 1 and got[0].notification.title == "to three devices"

            # a fresh device (new file), same account and signature: every subscription, then the next message
            async with device(stack, tmp_path / "w4.db") as w4:
                await w4.enable_sync(account, signature)
                await until_following(w4, account, topics)
                assert {s.app_domain for s in await w4.subscriptions(account)} == {first.domain, second.domain}
                with w4.events() as events:
                    await stack.send(second, [account], title="to the fresh device")
                    n = (await next_of(events, NotificationReceived)).notification
                assert (n.title, n.app_domain) == ("to the fresh device", second.domain)


async def test_two_devices_writing_one_key_converge_on_the_later_write(database_url: str, tmp_path: Path) -> None:
    """w1 subscribes (scope: alerts), w2 updates (alerts and news): two writes of one pushSubscription key. w1's
    first write then arrives again, late (a slow network, a mailbox replay). Every device, and a fresh one that
    reads all three records from the mailbox, keeps the later write."""
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        signature = sync_signature(eth.key, account)
        both = set(dapp.types.values())
        async with device(stack, tmp_path / "w1.db", resolver) as w1, \
                device(stack, tmp_path / "w2.db", resolver) as w2, device(stack, tmp_path / "w3.db") as w3:
            for w in (w1, w2):
                await w.register_with_key(account, eth.key, dapp.domain)
            for w in (w1, w2, w3):
                await w.enable_sync(account, signature)
            sub = await w1.subscribe(account, dapp.domain, ["alerts"])
            await until_following(w3, account, {sub.topic})
            early_value, early_id = (await w1.store.sync_records(account, SUBS))[sub.topic]
            assert early_value is not None

            await w2.update(dapp.domain, ["alerts", "news"])
            later_value, later_id = (await w2.store.sync_records(account, SUBS))[sub.topic]
            assert later_id > early_id and later_value != early_value

            await publish_record(stack, signature, SyncSet(SUBS, sub.topic, early_value, early_id))
            # a marker published after it: once a device has the marker, it has handled the late write too
            marker = SyncDel(SUBS, "marker", later_id + 1)
            await publish_record(stack, signature, marker)

            async def converged(w: NotifyClient) -> None:
                async def has_marker() -> bool:
                    return "marker" in await w.store.sync_records(account, SUBS)

                await until(has_marker, f"{w.path} got the marker")
                assert (await w.sync.items(account, SUBS))[sub.topic] == later_value
                (held,) = await w.subscriptions(account)
                assert set(held.scope) == both, held.scope

            for w in (w1, w2, w3):
                await converged(w)
            async with device(stack, tmp_path / "w4.db") as w4:
                await w4.enable_sync(account, signature)
                await converged(w4)


async def test_the_keeper_renews_a_watch_the_server_dropped(database_url: str, tmp_path: Path) -> None:
    """The server forgets a watcher after a day; the keeper re-watches before that (here: every 0.5 s), so a
    subscription made on another device while w1's watcher was gone still reaches w1."""
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with device(stack, tmp_path / "w1.db", resolver, keeper_interval=0.1, watch_refresh=0.5) as w1, \
                device(stack, tmp_path / "w2.db", resolver) as w2:
            for w in (w1, w2):
                await w.register_with_key(account, eth.key, dapp.domain)
            stored = await w1.store.get_key(f"identity:{account}")
            assert stored is not None
            engine = create_engine(stack.notify.config.database_url)
            try:
                async with engine.begin() as conn:  # what the server's expiry does to a watcher nobody renewed
                    gone = await conn.execute(delete(watchers).where(
                        watchers.c.did_key == encode_did_key(Ed25519KeyPair.from_seed(stored[0]).public_key)))
                    assert gone.rowcount == 1
            finally:
                await engine.dispose()
            sub = await w2.subscribe(account, dapp.domain)
            await until_following(w1, account, {sub.topic}, timeout=5)


async def test_after_a_relay_restart_a_change_on_another_device_is_still_seen(
    database_url: str, tmp_path: Path
) -> None:
    """The relay restarts in-process on the same port (its SQLite mailbox, key and webhooks kept, as a deployed
    relay's are): both devices reconnect, w1's keeper re-watches on the new connection (changes made while it
    was away would otherwise be missed), and a subscription made on w2 afterwards reaches w1."""
    # the same key too: the notify server checks the relay's signature on every webhook event
    config = RelayConfig(port=0, database_url=f"sqlite:///{tmp_path / 'relay.db'}", key_seed=os.urandom(32))
    async with running_stack(database_url, relay_config=config) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with device(stack, tmp_path / "w1.db", resolver, keeper_interval=0.1) as w1, \
                device(stack, tmp_path / "w2.db", resolver) as w2:
            for w in (w1, w2):
                await w.register_with_key(account, eth.key, dapp.domain)
            watched = w1._watched[account]
            await stack.relay.stop()
            restarted = RelayServer(dataclasses.replace(config, port=stack.relay.port))  # its port, now free
            await restarted.start()
            try:
                async def renewed() -> bool:
                    return w1._watched[account][1] > watched[1] and w2.relay.connected

                await until(renewed, "w1 re-watched on its new relay connection")
                sub = await w2.subscribe(account, dapp.domain)
                await until_following(w1, account, {sub.topic}, timeout=5)
            finally:
                await restarted.stop()
