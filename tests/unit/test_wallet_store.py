"""The wallet file's own rules (wallet/store.py), without any server: Sync records are last-writer-wins by
JSON-RPC id with remembered deletions, whatever order the relay delivers them in, and a read flag that comes
from the server's history reaches a notification already in the inbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wcnotify.wallet.models import Notification
from wcnotify.wallet.store import WalletStore

ACCOUNT, STORE = "eip155:1:0x0000000000000000000000000000000000000001", "com.walletconnect.notify.pushSubscription"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[WalletStore]:
    s = await WalletStore.open(tmp_path / "w.db", history_cap=10)
    try:
        yield s
    finally:
        await s.close()


async def test_a_stale_set_after_a_delete_does_not_resurrect_the_entry(tmp_path: Path) -> None:
    store = await WalletStore.open(tmp_path / "w.db", history_cap=10)
    try:
        assert await store.put_sync_record(ACCOUNT, STORE, "k", "v1", 10)
        assert await store.put_sync_record(ACCOUNT, STORE, "k", None, 20)  # the delete
        # a set written before the delete, arriving after it (relay mailbox replay, a slow device)
        assert not await store.put_sync_record(ACCOUNT, STORE, "k", "stale", 15)
        assert await store.sync_records(ACCOUNT, STORE) == {"k": (None, 20)}
    finally:
        await store.close()
    # the tombstone is in the file: a restarted device still refuses the stale set
    store = await WalletStore.open(tmp_path / "w.db", history_cap=10)
    try:
        assert not await store.put_sync_record(ACCOUNT, STORE, "k", "stale", 19)
        assert await store.put_sync_record(ACCOUNT, STORE, "k", "v3", 30)  # a later set does win
        assert await store.sync_records(ACCOUNT, STORE) == {"k": ("v3", 30)}
    finally:
        await store.close()


async def test_the_higher_id_wins_in_any_arrival_order(store: WalletStore) -> None:
    assert await store.put_sync_record(ACCOUNT, STORE, "a", "late", 200)
    assert not await store.put_sync_record(ACCOUNT, STORE, "a", "early", 100)
    assert await store.put_sync_record(ACCOUNT, STORE, "b", "early", 100)
    assert await store.put_sync_record(ACCOUNT, STORE, "b", "late", 200)
    assert not await store.put_sync_record(ACCOUNT, STORE, "b", "late", 200)  # the same record again: no change
    records = await store.sync_records(ACCOUNT, STORE)
    assert records == {"a": ("late", 200), "b": ("late", 200)}


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        ("x", "y", "y"),  # equal ids: the greater value, whichever came first
        ("y", "x", "y"),
        ("x", None, None),  # equal ids: the delete
        (None, "x", None),
    ],
)
async def test_equal_ids_resolve_the_same_way_on_every_device(
    store: WalletStore, first: str | None, second: str | None, winner: str | None
) -> None:
    await store.put_sync_record(ACCOUNT, STORE, "k", first, 7)
    await store.put_sync_record(ACCOUNT, STORE, "k", second, 7)
    assert await store.sync_records(ACCOUNT, STORE) == {"k": (winner, 7)}


def _notification(is_read: bool) -> Notification:
    return Notification(id="n1", topic="t", account=ACCOUNT, app_domain="app.example.com", type="alerts",
                        title="hi", body="b", icon="", url="", sent_at=1, is_read=is_read)


async def test_a_read_flag_from_the_servers_history_reaches_the_inbox(store: WalletStore) -> None:
    assert await store.add_notification(_notification(False))  # received over the relay: unread
    assert not await store.add_notification(_notification(True))  # a plain re-delivery does not change it
    assert [n.is_read for n in await store.notifications("t")] == [False]
    assert not await store.add_notification(_notification(True), update_read=True)  # history: read elsewhere
    assert [n.is_read for n in await store.notifications("t")] == [True]
    # nothing turns a read notification back to unread (there is no "mark unread" in the protocol)
    await store.add_notification(_notification(False), update_read=True)
    assert [n.is_read for n in await store.notifications("t")] == [True]
