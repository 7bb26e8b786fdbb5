"""Who is subscribed, as a dapp asks over HTTP, on SQLite and PostgreSQL: the reference's account lookup
(chain-agnostic, either address case), the paged v1 list (every subscriber exactly once, even while others
come and go), the deprecated v0 list, validation, auth, and one project never seeing another's subscribers.

Wallets subscribe for real through the relay; volume rows are inserted directly, shaped as the subscribe
handler writes them."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from wcnotify.notify.api import subscribers as subscribers_api
from wcnotify.notify.directory import CURSOR_APPS, CURSOR_SUBSCRIBERS, encode_cursor
from wcnotify.protocol.crypto import topic_of
from wcnotify.protocol.did import Account
from wcnotify.storage import create_engine
from wcnotify.storage.tables import projects, subscriber_scopes, subscribers

from .notify_stack import Dapp, Stack, Wallet, refused, running_stack


def random_account(chain: str = "eip155:1") -> Account:
    return Account.parse(f"{chain}:0x{os.urandom(20).hex()}").checksummed()


async def insert_subscribers(database_url: str, dapp: Dapp, accounts: list[Account], scope: list[str]) -> None:
    """Subscriber rows as the subscribe handler writes them (account as given, lowercase address key)."""
    engine = create_engine(database_url)
    now = int(time.time() * 1000)
    try:
        async with engine.begin() as conn:
            project = (await conn.execute(select(projects.c.id).where(projects.c.project_id == dapp.project_id))).one()
            rows, scopes = [], []
            for account in accounts:
                sym = os.urandom(32)
                sid = str(uuid.uuid4())
                rows.append({"id": sid, "project": project.id, "account": str(account),
                             "address": f"{account.namespace}:{account.address_key}", "sym_key": sym.hex(),
                             "topic": topic_of(sym), "expiry": int(time.time()) + 86400, "created_at": now,
                             "updated_at": now})
                scopes += [{"subscriber": sid, "type_id": t} for t in scope]
            await conn.execute(subscribers.insert(), rows)
            if scopes:
                await conn.execute(subscriber_scopes.insert(), scopes)
    finally:
        await engine.dispose()


async def delete_subscriber_row(database_url: str, account: Account) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            address = f"{account.namespace}:{account.address_key}"
            ids = select(subscribers.c.id).where(subscribers.c.address == address)
            await conn.execute(subscriber_scopes.delete().where(subscriber_scopes.c.subscriber.in_(ids)))
            await conn.execute(subscribers.delete().where(subscribers.c.address == address))
    finally:
        await engine.dispose()


async def walk(stack: Stack, dapp: Dapp, limit: int | None, *, between_pages: Any = None) -> list[dict[str, Any]]:
    """Every entry of GET /v1/{pid}/subscribers, page by page; checks each page's size and the end marker."""
    url = f"{stack.notify_url}/v1/{dapp.project_id}/subscribers"
    params: dict[str, Any] = {} if limit is None else {"limit": limit}
    out: list[dict[str, Any]] = []
    pages = 0
    while True:
        r = await stack.http.get(url, params=params, headers=dapp.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"subscribers", "next_cursor"}
        out += body["subscribers"]
        pages += 1
        if body["next_cursor"] is None:
            return out
        assert len(body["subscribers"]) == (limit or 100)  # only the last page is short
        params["cursor"] = body["next_cursor"]
        if between_pages is not None:
            await between_pages(pages)


async def test_lookup_is_chain_agnostic_case_insensitive_and_per_project(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        http, base = stack.http, stack.notify_url
        dapp, other = await stack.create_dapp(), await stack.create_dapp()
        alerts, news = dapp.types["alerts"], dapp.types["news"]
        url = f"{base}/v1/{dapp.project_id}/subscribers"
        async with (
            Wallet(stack) as mainnet,  # checksummed eip155:1
            Wallet(stack, chain="eip155:10") as optimism,
            Wallet(stack, chain="eip155:137") as elsewhere,  # subscribed to the other dapp only
            Wallet(stack) as bystander,  # registered, never subscribes
        ):
            for w in (mainnet, optimism):
                await w.register(dapp.domain)
            await elsewhere.register(other.domain)
            await bystander.register(dapp.domain)
            await mainnet.subscribe(dapp, ["alerts"])
            await optimism.subscribe(dapp, ["alerts", "news"])
            await elsewhere.subscribe(other, ["news"])

            asked = [
                f"eip155:2:{mainnet.eth.address}",  # another chain, checksummed
                f"eip155:1:{optimism.eth.address.lower()}",  # another chain, lowercase
                str(elsewhere.account),
                str(bystander.account),
                f"eip155:1:{mainnet.eth.address.lower()}",  # the same subscriber again: one key
            ]
            r = await http.post(url, json={"accounts": asked}, headers=dapp.headers)
            assert r.status_code == 200, r.text
            # keyed by the account as stored (the one each wallet subscribed with), scopes sorted
            assert r.json() == {
                str(mainnet.account): {"notification_types": [alerts]},
                str(optimism.account): {"notification_types": sorted([alerts, news])},
            }
            r = await http.post(f"{base}/v1/{other.project_id}/subscribers", json={"accounts": asked},
                                headers=other.headers)
            assert r.json() == {str(elsewhere.account): {"notification_types": [other.types["news"]]}}

            # the answer follows the subscription: update, then delete
            await mainnet.update(dapp, ["news"])
            await optimism.delete(dapp)
            r = await http.post(url, json={"accounts": asked}, headers=dapp.headers)
            assert r.json() == {str(mainnet.account): {"notification_types": [news]}}
            r = await http.post(url, json={"accounts": [str(bystander.account)]}, headers=dapp.headers)
            assert r.status_code == 200 and r.json() == {}

            # a hundred accounts is the most one request may ask about
            many = [str(random_account()) for _ in range(99)] + [str(mainnet.account)]
            r = await http.post(url, json={"accounts": many}, headers=dapp.headers)
            assert r.status_code == 200 and list(r.json()) == [str(mainnet.account)]

        # validation: 422 naming the field (and the index), in our JSON error shape
        good = str(random_account())
        refused(await http.post(url, json={"accounts": []}, headers=dapp.headers), 422, "accounts")
        refused(await http.post(url, json={"accounts": [*many, good]}, headers=dapp.headers), 422, "accounts",
                "100")
        refused(await http.post(url, json={}, headers=dapp.headers), 422, "accounts")
        refused(await http.post(url, json={"accounts": good}, headers=dapp.headers), 422, "accounts")
        refused(await http.post(url, json=[good], headers=dapp.headers), 422)
        refused(await http.post(url, json={"accounts": [good, good, good, "not an account"]}, headers=dapp.headers),
                422, "accounts.3: not a CAIP-10 account")
        refused(await http.post(url, json={"accounts": [good, 7]}, headers=dapp.headers), 422, "accounts.1")
        refused(await http.post(url, json={"accounts": ["eip155:1:0x1234"]}, headers=dapp.headers), 422,
                "accounts.0", "20-byte")
        refused(await http.post(url, json={"accounts": [good, "eip155:1:" + "0x" + "ab" * 300]},
                                headers=dapp.headers), 422, "accounts.1")
        refused(await http.post(url, content=b"{", headers=dapp.headers | {"content-type": "application/json"}), 422)

        # auth: the project's own secret only
        body = {"accounts": [good]}
        refused(await http.post(url, json=body), 401, "project secret")
        refused(await http.post(url, json=body, headers={"authorization": "Bearer wrong"}), 401, "Invalid")
        refused(await http.post(url, json=body, headers=other.headers), 401, "Invalid")
        refused(await http.post(f"{base}/v1/{uuid.uuid4().hex}/subscribers", json=body, headers=dapp.headers), 401)


async def test_paging_returns_every_subscriber_exactly_once(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_stack(database_url) as stack:
        http, base = stack.http, stack.notify_url
        dapp, other = await stack.create_dapp(), await stack.create_dapp()
        url = f"{base}/v1/{dapp.project_id}/subscribers"

        empty = await http.get(url, headers=dapp.headers)
        assert empty.json() == {"subscribers": [], "next_cursor": None}

        async with (
            Wallet(stack) as w1,
            Wallet(stack, chain="eip155:10") as w2,
            Wallet(stack, chain="eip155:8453") as w3,
        ):
            real = {w1: ["alerts"], w2: ["news"], w3: []}
            for wallet, types in real.items():
                await wallet.register(dapp.domain)
                await wallet.subscribe(dapp, types)
        volume = [random_account(f"eip155:{1 + i % 5}") for i in range(247)]
        await insert_subscribers(database_url, dapp, volume, [dapp.types["alerts"]])
        await insert_subscribers(database_url, other, [random_account() for _ in range(30)], [])
        expected = {str(a) for a in volume} | {str(w.account) for w in real}
        assert len(expected) == 250

        for limit in (None, 100, 7, 249, 250, 1000):
            entries = await walk(stack, dapp, limit)
            accounts = [e["account"] for e in entries]
            assert len(accounts) == 250 and set(accounts) == expected, limit  # none missing, none twice
            keys = [Account.parse(a).address_key for a in accounts]
            assert keys == sorted(keys)  # a stable order: the chain-agnostic address
        by_account = {e["account"]: e for e in entries}
        started = int(time.time() * 1000) - 120_000
        for wallet, types in real.items():
            entry = by_account[str(wallet.account)]
            assert entry["notification_types"] == sorted(dapp.types[t] for t in types)
            assert started < entry["created_at"] <= int(time.time() * 1000)
        assert by_account[str(volume[0])]["notification_types"] == [dapp.types["alerts"]]
        assert len((await http.get(url, headers=dapp.headers)).json()["subscribers"]) == 100  # default limit

        # subscribers that come and go during a walk do not disturb the others: each that stays is seen once;
        # one that arrives behind the cursor is not seen, one ahead of it is; one deleted before its page is not
        behind = Account.parse(f"eip155:1:0x{'00' * 19}01").checksummed()
        ahead = Account.parse(f"eip155:1:0x{'ff' * 19}fe").checksummed()
        gone = sorted(volume, key=lambda a: a.address_key)[-2:]  # the last two: far past the first page

        async def churn(page: int) -> None:
            if page == 1:
                await insert_subscribers(database_url, dapp, [behind, ahead], [])
                for account in gone:
                    await delete_subscriber_row(database_url, account)

        entries = await walk(stack, dapp, 30, between_pages=churn)
        accounts = [e["account"] for e in entries]
        stayed = expected - {str(a) for a in gone}
        assert len(accounts) == len(set(accounts)) == len(stayed) + 1
        assert set(accounts) == stayed | {str(ahead)}
        now_there = stayed | {str(behind), str(ahead)}
        assert {e["account"] for e in await walk(stack, dapp, 1000)} == now_there

        # the other project's subscribers are its own
        theirs = await walk(stack, other, 1000)
        assert len(theirs) == 30 and not {e["account"] for e in theirs} & now_there

        # validation and auth
        for bad in (0, -1, 1001, "x", ""):
            refused(await http.get(url, params={"limit": bad}, headers=dapp.headers), 422, "limit")
        for bad in ("garbage!", "", "A" * 600, encode_cursor(CURSOR_APPS, "x.example"), "czo",
                    encode_cursor(CURSOR_SUBSCRIBERS, "eip155:\x00")):
            refused(await http.get(url, params={"cursor": bad}, headers=dapp.headers), 422, "cursor")
        refused(await http.get(url), 401, "project secret")
        refused(await http.get(url, headers=other.headers), 401, "Invalid")

        # the deprecated v0 list: the reference's bare array of stored accounts, streamed in pages
        monkeypatch.setattr(subscribers_api, "V0_PAGE", 7)  # many pages (and one partial) without 1000s of rows
        r = await http.get(f"{base}/{dapp.project_id}/subscribers", headers=dapp.headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json") and r.headers["deprecation"] == "true"
        assert f"/v1/{dapp.project_id}/subscribers" in r.headers["link"]
        v0 = r.json()
        assert isinstance(v0, list) and len(v0) == len(set(v0)) == len(now_there) and set(v0) == now_there
        monkeypatch.setattr(subscribers_api, "V0_PAGE", 5)  # a multiple of the count: the last page is full
        r = await http.get(f"{base}/{dapp.project_id}/subscribers", headers=dapp.headers)
        assert sorted(r.json()) == sorted(v0)
        fresh = await stack.create_dapp(types=())
        assert (await http.get(f"{base}/{fresh.project_id}/subscribers", headers=fresh.headers)).json() == []
        refused(await http.get(f"{base}/{dapp.project_id}/subscribers"), 401, "project secret")
        refused(await http.get(f"{base}/{dapp.project_id}/subscribers", headers=other.headers), 401, "Invalid")
