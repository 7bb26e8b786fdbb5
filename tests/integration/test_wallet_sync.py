"""The Sync API stores between a user's devices, end to end over the real relay and notify server (SQLite and
PostgreSQL): the seed's multi-client subscribe, a device added later recovering from the relay's mailbox, and
deletes reaching every device. The followers here have no identity key: Sync alone carries the subscription
(no watch can have done it), and the notifications they get are verified with the key the record names."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from wcnotify import spec
from wcnotify.protocol.cacao import sign_eip191
from wcnotify.protocol.notify_sync import parse_push_subscription
from wcnotify.protocol.sync import SyncDel, SyncSet
from wcnotify.wallet import NotificationReceived, SubscriptionsChanged, WalletError

from .notify_stack import running_stack
from .wallet_devices import StackResolver, device, new_account, next_of, publish_record, until


async def test_subscriptions_reach_every_device_through_sync(database_url: str, tmp_path: Path) -> None:
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        signature = sign_eip191(f"{spec.SYNC_MESSAGE_PREFIX}{account}{spec.SYNC_MESSAGE_SUFFIX}", eth.key)
        async with device(stack, tmp_path / "w1.db", resolver) as w1, device(stack, tmp_path / "wx.db") as wx:
            await w1.register_with_key(account, eth.key, dapp.domain)
            await w1.enable_sync(account, signature)
            await wx.enable_sync(account, signature)  # the same signature: the same stores
            assert not await wx.is_registered(account)

            with wx.events() as events:
                sub = await w1.subscribe(account, dapp.domain, ["alerts"])
                changed = await next_of(events, SubscriptionsChanged)
            assert changed.source == "sync" and [s.topic for s in changed.subscriptions] == [sub.topic]
            (followed,) = await wx.subscriptions(account)
            assert followed == sub  # same topic, key, app key and scope
            stored = await w1.sync.items(account, spec.SYNC_STORE_PUSH_SUBSCRIPTION)
            value = parse_push_subscription(sub.topic, stored[sub.topic])
            first_write = (await w1.store.sync_records(account, spec.SYNC_STORE_PUSH_SUBSCRIPTION))[sub.topic]
            assert value.app_domain == dapp.domain and value.enabled_ids == (dapp.types["alerts"],)
            assert {s.name for s in value.scope} == {"alerts", "news"}

            with w1.events() as e1, wx.events() as ex:
                await stack.send(dapp, [account], "alerts", title="to every device")
                got1, gotx = await asyncio.gather(next_of(e1, NotificationReceived), next_of(ex, NotificationReceived))
            assert got1.notification.id == gotx.notification.id

            # a device added later, with nothing but the signature, recovers the store from the relay's mailbox
            async with device(stack, tmp_path / "w3.db") as w3:
                with w3.events() as events:
                    await w3.enable_sync(account, signature)
                    if not await w3.subscriptions(account):
                        await next_of(events, SubscriptionsChanged)
                assert [s.topic for s in await w3.subscriptions(account)] == [sub.topic]

            with wx.events() as events:
                await w1.update(dapp.domain, ["alerts", "news"])
                changed = await next_of(events, SubscriptionsChanged)
            assert set(changed.subscriptions[0].scope) == set(dapp.types.values())

            with wx.events() as events:
                await w1.delete(dapp.domain)
                gone = await next_of(events, SubscriptionsChanged)
            assert gone.subscriptions == () and await wx.subscriptions(account) == []

        # the record's tombstone keeps a device from resurrecting it: the first wc_syncSet arriving again after
        # the wc_syncDel (a replay, a slow device) loses to it, on a device that read the store from the mailbox
        async with device(stack, tmp_path / "w4.db") as w4:
            await w4.enable_sync(account, signature)
            value_1, id_1 = first_write
            assert value_1 is not None
            await publish_record(stack, signature, SyncSet(spec.SYNC_STORE_PUSH_SUBSCRIPTION, sub.topic, value_1, id_1))
            marker = SyncDel(spec.SYNC_STORE_PUSH_SUBSCRIPTION, "marker", id_1)  # handled after the replay

            async def has_marker() -> bool:
                return "marker" in await w4.store.sync_records(account, spec.SYNC_STORE_PUSH_SUBSCRIPTION)

            await publish_record(stack, signature, marker)
            await until(has_marker, "w4 read the store")
            assert await w4.subscriptions(account) == []


async def test_followers_restart_and_keep_following(database_url: str, tmp_path: Path) -> None:
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with device(stack, tmp_path / "w1.db", resolver) as w1:
            await w1.register_with_key(account, eth.key, dapp.domain)
            await w1.sync.enable_with_key(account, eth.key)
            sub = await w1.subscribe(account, dapp.domain)
            async with device(stack, tmp_path / "wx.db") as wx:
                with wx.events() as events:
                    await wx.sync.enable_with_key(account, eth.key)
                    if not await wx.subscriptions(account):
                        await next_of(events, SubscriptionsChanged)
            async with device(stack, tmp_path / "wx.db") as wx:  # the same file again: no signature needed
                assert [s.topic for s in await wx.subscriptions(account)] == [sub.topic]
                with wx.events() as events:
                    await stack.send(dapp, [account], title="after restart")
                    assert (await next_of(events, NotificationReceived)).notification.title == "after restart"


async def test_a_signature_of_another_account_is_refused(database_url: str, tmp_path: Path) -> None:
    async with running_stack(database_url) as stack:
        _eth, account = new_account()
        other, _ = new_account()
        async with device(stack, tmp_path / "w.db") as w:
            bad = sign_eip191(w.sync.message(account), other.key)
            with pytest.raises(WalletError, match="not by"):
                await w.enable_sync(account, bad)
            with pytest.raises(WalletError, match="EIP-191"):
                await w.enable_sync(account, "0x1234")
            assert not w.sync.enabled(account)
