"""History (``wc_notifyGetNotifications``) and read state (``wc_notifyMarkNotificationsAsRead``, HTTP
mark-all-as-read) on SQLite and PostgreSQL. Sending notifications is a later issue, so the inbox rows
are written straight into the database, as delivery will write them."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from wcnotify import spec

from .notify_stack import Dapp, RpcRefused, Wallet, running_stack, seed_inbox, unread_ids


async def all_pages(wallet: Wallet, dapp: Dapp, lmt: int, *, urf: bool = False) -> list[dict[str, Any]]:
    """Every page from the first, following ``aft``; checks ``mre`` on each."""
    pages: list[dict[str, Any]] = []
    aft = None
    while True:
        page = await wallet.history(dapp, lmt=lmt, aft=aft, urf=urf)
        assert page["act"] == "notify_get_notifications_response" and page["iss"] == dapp.auth_did
        assert len(page["nfs"]) <= lmt
        pages.append(page)
        if not page["mre"]:
            return pages
        assert len(page["nfs"]) == lmt
        aft = page["nfs"][-1]["id"]
        assert len(pages) < 20, "paging does not end"


def ids_of(pages: list[dict[str, Any]]) -> list[str]:
    return [n["id"] for p in pages for n in p["nfs"]]


async def test_history_paging_0_1_4_5_6_7(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        counts = (0, 1, 4, 5, 6, 7)
        dapps = [await stack.create_dapp() for _ in counts]
        async with Wallet(stack) as wallet:
            await wallet.register("wallet.example", all_apps=True)
            for dapp, count in zip(dapps, counts, strict=True):
                await wallet.subscribe(dapp, ["alerts"])
                seeded = await seed_inbox(database_url, dapp, wallet.subscriptions[dapp.domain]["symKey"], count)
                pages = await all_pages(wallet, dapp, 5)
                assert ids_of(pages) == seeded, f"{count} notifications"  # newest first, none skipped or repeated
                assert len(pages) == max(1, -(-count // 5))
                assert [p["mre"] for p in pages] == [True] * (len(pages) - 1) + [False]
                assert all(not p["mur"] for p in pages[-1:])
                if count:
                    first = pages[0]["nfs"][0]
                    assert set(first) == {"id", "sent_at", "type", "title", "body", "icon", "url", "is_read"}
                    assert first["type"] == dapp.types["alerts"] and first["is_read"] is False
                    assert first["title"] == f"title {count - 1}" and abs(first["sent_at"] / 1000 - time.time()) < 60
                # the unread count shows in sbs
                assert (await wallet.update(dapp, ["alerts"]))["sbs"][0]["unreadNotificationCount"] == count


async def test_equal_timestamps_unread_first_and_refusals(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        async with Wallet(stack) as wallet, Wallet(stack) as other:
            for w in (wallet, other):
                await w.register(dapp.domain)
                await w.subscribe(dapp)
            key = wallet.subscriptions[dapp.domain]["symKey"]
            stamp = int(time.time() * 1000) - 10_000
            # 7 at one instant, 3 at another: ordered by (created_at desc, id desc)
            seeded = sorted(
                [(stamp, i) for i in await seed_inbox(database_url, dapp, key, 7, created_at=stamp)]
                + [(stamp + 5, i) for i in await seed_inbox(database_url, dapp, key, 3, created_at=stamp + 5)],
                reverse=True,
            )
            expected = [i for _, i in seeded]
            for lmt in (3, 7, 50):
                assert ids_of(await all_pages(wallet, dapp, lmt)) == expected, f"lmt {lmt}"

            # urf: unread first (each group newest first), mur while unread ones remain after the page
            read = set(expected[1::3]) | {expected[-1]}  # spread over both timestamps, the oldest included
            await wallet.mark_read(dapp, sorted(read))
            unread_order = [i for i in expected if i not in read]
            read_order = [i for i in expected if i in read]
            for lmt in (1, 4, 50):
                pages = await all_pages(wallet, dapp, lmt, urf=True)
                assert ids_of(pages) == unread_order + read_order, f"urf lmt {lmt}"
                seen = 0
                for page in pages:
                    seen += len(page["nfs"])
                    assert page["mur"] == (seen < len(unread_order)), f"mur after {seen} with lmt {lmt}"
                    assert [n["is_read"] for n in page["nfs"]] == [i in read for i in (n["id"] for n in page["nfs"])]
            # without urf, mur says whether any unread one is left after the page
            first = await wallet.history(dapp, lmt=2)
            assert first["mre"] and first["mur"]
            last_unread = max(expected.index(i) for i in unread_order)
            tail = await wallet.history(dapp, lmt=50, aft=expected[last_unread])
            assert tail["nfs"] and all(n["is_read"] for n in tail["nfs"]) and not tail["mur"]

            # refusals
            other_ids = await seed_inbox(database_url, dapp, other.subscriptions[dapp.domain]["symKey"], 1)
            for aft in (str(uuid.uuid4()), other_ids[0]):
                with pytest.raises(RpcRefused, match="is not one of this subscription's notifications"):
                    await wallet.history(dapp, lmt=5, aft=aft)
            with pytest.raises(RpcRefused, match="aft must be a notification id"):
                await wallet.history(dapp, lmt=5, aft="not-a-uuid")
            for lmt in (0, spec.NOTIFY_HISTORY_MAX_LIMIT + 1):
                with pytest.raises(RpcRefused, match=f"lmt must be between 1 and {spec.NOTIFY_HISTORY_MAX_LIMIT}"):
                    await wallet.history(dapp, lmt=lmt)


async def test_mark_read_and_mark_all_over_http(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp, elsewhere = await stack.create_dapp(), await stack.create_dapp()
        async with Wallet(stack) as alice, Wallet(stack) as bob:
            await alice.register("wallet.example", all_apps=True)
            await bob.register(dapp.domain)
            await alice.subscribe(dapp)
            await alice.subscribe(elsewhere)
            await bob.subscribe(dapp)
            key = {name: w.subscriptions[dapp.domain]["symKey"] for name, w in (("alice", alice), ("bob", bob))}
            mine = await seed_inbox(database_url, dapp, key["alice"], 5)
            theirs = await seed_inbox(database_url, dapp, key["bob"], 3)
            far = await seed_inbox(database_url, elsewhere, alice.subscriptions[elsewhere.domain]["symKey"], 2)

            async def unread_count() -> int:
                return (await alice.watch(dapp.domain))["sbs"][0]["unreadNotificationCount"]

            # none: an empty list is refused; an id that is not in the inbox changes nothing
            with pytest.raises(RpcRefused, match="ids must list 1 or more"):
                await alice.mark_read(dapp, [])
            with pytest.raises(RpcRefused, match="ids must be UUIDs"):
                await alice.mark_read(dapp, ["x"])
            answer = await alice.mark_read(dapp, [str(uuid.uuid4()), theirs[0]])  # someone else's: untouched
            assert answer["act"] == "notify_mark_notifications_as_read_response"
            assert await unread_count() == 5 and await unread_ids(database_url, key["bob"]) == set(theirs)

            # one, then a selection (one already read), then all
            await alice.mark_read(dapp, [mine[0]])
            assert await unread_count() == 4
            assert [n["is_read"] for n in (await alice.history(dapp))["nfs"]] == [True, False, False, False, False]
            await alice.mark_read(dapp, mine[0:3])
            assert await unread_ids(database_url, key["alice"]) == set(mine[3:]) and await unread_count() == 2
            await alice.mark_read(dapp)
            assert await unread_count() == 0 and await unread_ids(database_url, key["alice"]) == set()
            assert await unread_ids(database_url, key["bob"]) == set(theirs)  # other subscribers untouched
            assert len(await unread_ids(database_url, alice.subscriptions[elsewhere.domain]["symKey"])) == len(far)

            # HTTP mark-all-as-read: the project's secret, every subscriber of that project only
            url = f"{stack.notify_url}/v1/{dapp.project_id}/mark-all-as-read"
            assert (await stack.http.post(url)).status_code == 401
            assert (await stack.http.post(url, headers=elsewhere.headers)).status_code == 401
            assert (await stack.http.post(url, headers={"authorization": "Bearer wrong"})).status_code == 401
            assert await unread_ids(database_url, key["bob"]) == set(theirs)
            response = await stack.http.post(url, headers=dapp.headers)
            assert response.status_code == 204, response.text
            assert await unread_ids(database_url, key["bob"]) == set()
            assert (await bob.watch(dapp.domain))["sbs"][0]["unreadNotificationCount"] == 0
            assert len(await unread_ids(database_url, alice.subscriptions[elsewhere.domain]["symKey"])) == len(far)
