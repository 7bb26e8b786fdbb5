"""Webhooks to dapps (notify/webhooks.py, docs/webhooks.md) over real sockets, on SQLite and PostgreSQL:
a wallet's subscribe/update/delete reach a real HTTP receiver signed and in order; a receiver that fails or
is down gets every event once it is back, in order, once; a hanging receiver delays nobody else; the CRUD
API's validation; and, with an injected clock, the retry schedule, the three-day drop and the claim lease."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from wcnotify import spec
from wcnotify.dapp._asgi import lifespan
from wcnotify.notify import store
from wcnotify.notify import webhooks as wh
from wcnotify.notify.netguard import NetGuard
from wcnotify.notify.store import Database, Subscriber
from wcnotify.protocol.webhook_signature import verify_signature
from wcnotify.serving import AsgiService
from wcnotify.storage import open_database
from wcnotify.storage.tables import dapp_webhooks, webhook_events

from .notify_stack import Dapp, Stack, Wallet, running_stack

FAST = {"webhook_retry_base": 0.05}  # retries within tens of milliseconds
LOCAL = NetGuard(allow_private=True)  # the receivers are on 127.0.0.1 (test_ssrf_guard.py: the default refuses)


# -------------------------------------------------------------------------------------- a receiver


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.body)

    @property
    def delivery(self) -> int:
        return int(self.headers[spec.WEBHOOK_HEADER_DELIVERY.lower()])


class Receiver:
    """A dapp's webhook endpoint (a bare ASGI app under uvicorn): answers ``status`` (200 by default), or
    hangs while ``hang`` is set; records every request in ``hits`` and the 2xx ones in ``accepted``."""

    def __init__(self) -> None:
        self.status = 200
        self.hang = False
        self.released = asyncio.Event()
        self.hits: list[Hit] = []
        self.server: AsgiService | None = None
        self.port = 0

    @property
    def accepted(self) -> list[Hit]:
        return [h for h in self.hits if 200 <= h.status < 300]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/notify?token=abc"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status = self.status
        if self.hang:  # recorded as not accepted; answered 503 if the sender is still there when released
            status = 0
            self.hits.append(Hit(headers, body, status))
            await self.released.wait()
        else:
            self.hits.append(Hit(headers, body, status))
        await send({"type": "http.response.start", "status": status or 503,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if 200 <= status < 300 else b"receiver is broken"})

    async def start(self) -> None:
        self.server = AsgiService(self, "127.0.0.1", self.port, name="receiver")
        self.port = self.server.port
        await self.server.start()

    async def stop(self) -> None:
        self.released.set()
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def wait(self, accepted: int, timeout: float = 10) -> list[Hit]:
        """The accepted hits, once there are ``accepted`` of them."""
        deadline = time.monotonic() + timeout
        while len(self.accepted) < accepted:
            assert time.monotonic() < deadline, f"{len(self.accepted)} of {accepted} events arrived: {self.hits}"
            await asyncio.sleep(0.01)
        return self.accepted

    async def wait_hits(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.hits) < count:
            assert time.monotonic() < deadline, f"{len(self.hits)} of {count} requests arrived"
            await asyncio.sleep(0.01)


@asynccontextmanager
async def receivers(count: int = 1) -> AsyncIterator[list[Receiver]]:
    started = [Receiver() for _ in range(count)]
    for r in started:
        await r.start()
    try:
        yield started
    finally:
        for r in started:
            await r.stop()


async def add_webhook(stack: Stack, dapp: Dapp, url: str, events: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url} if events is None else {"url": url, "events": events}
    r = await stack.http.post(f"{stack.notify_url}/v1/{dapp.project_id}/webhooks", json=body, headers=dapp.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def list_hooks(stack: Stack, dapp: Dapp) -> list[dict[str, Any]]:
    r = await stack.http.get(f"{stack.notify_url}/v1/{dapp.project_id}/webhooks", headers=dapp.headers)
    assert r.status_code == 200, r.text
    return r.json()


def check_signed(hit: Hit, secret: str) -> dict[str, Any]:
    """The body, once its signature, headers and fields are what docs/webhooks.md says."""
    header = hit.headers[spec.WEBHOOK_HEADER_SIGNATURE.lower()]
    t = verify_signature(secret, header, hit.body, now=time.time())
    assert abs(t - time.time()) < 60
    body = hit.json
    assert hit.headers[spec.WEBHOOK_HEADER_EVENT.lower()] == body["event"]
    assert hit.headers["content-type"] == "application/json"
    assert set(body) == {"id", "event", "account", "app_domain", "project_id", "notification_types", "timestamp"}
    uuid.UUID(body["id"])
    assert abs(body["timestamp"] - time.time() * 1000) < 60_000
    return body


# ------------------------------------------------------------------------------------ end to end


async def test_wallet_changes_reach_the_webhooks_signed_and_in_order(database_url: str) -> None:
    async with running_stack(database_url, **FAST) as stack, receivers(2) as (everything, leaving):
        dapp = await stack.create_dapp()
        hook = await add_webhook(stack, dapp, everything.url)
        assert hook["events"] == ["subscribed", "updated", "unsubscribed"] and hook["url"] == everything.url
        assert hook["secret"].startswith("whsec_")
        only_leaving = await add_webhook(stack, dapp, leaving.url, ["unsubscribed"])
        alerts, news = dapp.types["alerts"], dapp.types["news"]
        async with Wallet(stack) as wallet:
            await wallet.register(dapp.domain)
            await wallet.subscribe(dapp, ["alerts"])  # subscribed
            await wallet.subscribe(dapp, ["alerts"])  # same types: only the expiry moved, no event
            await wallet.subscribe(dapp, ["news"])  # a re-subscribe that changes the types: updated
            await wallet.update(dapp, ["alerts", "news"])  # updated
            await wallet.update(dapp, ["news", "alerts"])  # same set: no event
            await wallet.delete(dapp)  # unsubscribed

        # order is guaranteed, so "no event" for the no-ops shows without waiting: they would sit in between
        hits = await everything.wait(4)
        bodies = [check_signed(h, hook["secret"]) for h in hits]
        assert [b["event"] for b in bodies] == ["subscribed", "updated", "updated", "unsubscribed"]
        assert [b["notification_types"] for b in bodies] == [[alerts], [news], sorted([alerts, news]), []]
        for b in bodies:
            assert b["account"] == str(wallet.account) and b["app_domain"] == dapp.domain
            assert b["project_id"] == dapp.project_id
        deliveries = [h.delivery for h in hits]
        assert deliveries == sorted(deliveries) and len(set(deliveries)) == 4
        assert [b["timestamp"] for b in bodies] == sorted(b["timestamp"] for b in bodies)
        assert len(everything.hits) == 4  # nothing failed, nothing was sent twice

        # the webhook that asked for unsubscribed only got that one, with the same event id
        (gone,) = await leaving.wait(1)
        assert check_signed(gone, only_leaving["secret"]) == bodies[-1]
        assert gone.delivery != hits[-1].delivery  # a delivery id is per webhook

        # the receiver has the last POST a moment before the dispatcher records it as delivered
        deadline = time.monotonic() + 5
        while True:
            listed = {h["id"]: h for h in await list_hooks(stack, dapp)}
            if all(h["pending"] == 0 for h in listed.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert listed[hook["id"]] | {"created_at": 0} == {
            "id": hook["id"], "url": everything.url, "events": hook["events"], "created_at": 0,
            "delivered": 4, "failed": 0, "pending": 0, "consecutive_failures": 0, "last_error": None,
            "next_attempt_at": None,
        }
        assert listed[only_leaving["id"]]["delivered"] == 1
        assert all("secret" not in h for h in listed.values())


async def test_a_receiver_that_fails_then_is_down_gets_every_event_in_order_once_back(database_url: str) -> None:
    async with running_stack(database_url, **FAST) as stack, receivers(1) as (receiver,):
        dapp = await stack.create_dapp()
        hook = await add_webhook(stack, dapp, receiver.url)
        receiver.status = 500
        async with Wallet(stack) as alice, Wallet(stack) as bob:
            await alice.register(dapp.domain)
            await bob.register(dapp.domain)
            await alice.subscribe(dapp, ["alerts"])
            await bob.subscribe(dapp, ["news"])
            await receiver.wait_hits(3)  # the first event, tried and retried
            await alice.update(dapp, ["alerts", "news"])

            # nothing but the head of the queue is ever tried: order holds while failing
            assert {h.delivery for h in receiver.hits} == {receiver.hits[0].delivery}
            state = (await list_hooks(stack, dapp))[0]
            assert state["pending"] == 3 and state["delivered"] == 0 and state["failed"] >= 3
            assert state["consecutive_failures"] >= 3
            assert state["last_error"] == "HTTP 500: receiver is broken"

            # now the receiver is down altogether (connection refused)
            tried = len(receiver.hits)
            port = receiver.port
            await receiver.stop()
            await bob.update(dapp, ["alerts"])
            deadline = time.monotonic() + 10
            while "Connect" not in ((await list_hooks(stack, dapp))[0]["last_error"] or ""):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            await alice.delete(dapp)

            # back, on the same address
            receiver.status, receiver.port = 200, port
            await receiver.start()
            hits = await receiver.wait(5)
        bodies = [check_signed(h, hook["secret"]) for h in hits]
        assert [(b["account"], b["event"]) for b in bodies] == [
            (str(alice.account), "subscribed"), (str(bob.account), "subscribed"), (str(alice.account), "updated"),
            (str(bob.account), "updated"), (str(alice.account), "unsubscribed"),
        ]
        assert [h.delivery for h in hits] == sorted({h.delivery for h in hits})  # in order, each once
        assert hits[0].delivery == receiver.hits[0].delivery and hits[0].json == receiver.hits[0].json
        await asyncio.sleep(0.2)
        assert len(receiver.accepted) == 5
        state = (await list_hooks(stack, dapp))[0]
        assert (state["delivered"], state["pending"], state["consecutive_failures"]) == (5, 0, 0)
        assert state["failed"] >= tried + 1 and state["last_error"] is None and state["next_attempt_at"] is None


async def test_a_hanging_webhook_delays_no_one_else(database_url: str) -> None:
    async with (
        running_stack(database_url, webhook_timeout=1.5, webhook_retry_base=0.05) as stack,
        receivers(2) as (stuck, fine),
    ):
        slow_app, other_app = await stack.create_dapp(), await stack.create_dapp()
        await add_webhook(stack, slow_app, stuck.url)
        await add_webhook(stack, other_app, fine.url)
        stuck.hang = True
        async with Wallet(stack) as wallet:
            await wallet.register("wallet.example", all_apps=True)
            await wallet.subscribe(slow_app, ["alerts"])
            await stuck.wait_hits(1)  # held open by the receiver from here on
            started = time.monotonic()
            await wallet.subscribe(other_app, ["alerts"])  # the wallet is answered meanwhile
            await wallet.update(slow_app, ["news"])
            (hit,) = await fine.wait(1)
            assert time.monotonic() - started < 1.0  # well before the hanging POST times out
            assert hit.json["event"] == "subscribed" and hit.json["project_id"] == other_app.project_id

            # the hanging POST times out, counts as a failure, and is retried once the receiver answers
            deadline = time.monotonic() + 10
            while (state := (await list_hooks(stack, slow_app))[0])["failed"] < 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert state["last_error"] == "no answer within 1.5 s" and state["pending"] == 2
            stuck.hang = False
            stuck.released.set()
            hits = await stuck.wait(2)
        assert [h.json["event"] for h in hits] == ["subscribed", "updated"]
        assert len(fine.hits) == 1


# ------------------------------------------------------------------------------------------ the API


async def test_crud_validation_limits_and_other_projects(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp, rival = await stack.create_dapp(), await stack.create_dapp()
        base = f"{stack.notify_url}/v1/{dapp.project_id}/webhooks"
        http = stack.http

        async def refused(response: httpx.Response, status: int, words: str) -> None:
            assert response.status_code == status, response.text
            assert words in response.json()["error"], response.json()

        good = {"url": "https://dapp.example/hooks"}
        await refused(await http.post(base, json=good), 401, "project secret")
        await refused(await http.get(base, headers={"authorization": "Bearer nope"}), 401, "Invalid")
        await refused(await http.post(base, json=good, headers=rival.headers), 401, "Invalid")
        for url, words in [
            ("ftp://dapp.example/hooks", "http:// or https://"),
            ("dapp.example/hooks", "http:// or https://"),
            ("https://", "http:// or https://"),
            ("https://dapp.example/a b", "spaces"),
            ("https://dapp.example:99999/", "not a valid URL"),
            ("https://dapp.example/" + "a" * 2030, "at most 2048"),
            ("", "url"),
        ]:
            await refused(await http.post(base, json={"url": url}, headers=dapp.headers), 422, words)
        await refused(await http.post(base, json={}, headers=dapp.headers), 422, "url")
        await refused(await http.post(base, json=good | {"events": ["subscribed", "paid"]}, headers=dapp.headers),
                      422, "unknown event(s) paid")
        await refused(await http.post(base, json=good | {"events": []}, headers=dapp.headers), 422, "at least one")
        await refused(await http.post(base, json=good | {"events": "updated"}, headers=dapp.headers), 422, "events")

        subset = await add_webhook(stack, dapp, "http://127.0.0.1:9/x", ["unsubscribed", "subscribed", "subscribed"])
        assert subset["events"] == ["subscribed", "unsubscribed"]
        assert (await add_webhook(stack, dapp, "https://dapp.example/" + "a" * 2000))["events"] == list(
            spec.WEBHOOK_EVENTS)
        for i in range(spec.WEBHOOK_MAX_PER_PROJECT - 2):
            await add_webhook(stack, dapp, f"https://dapp.example/{i}")
        await refused(await http.post(base, json=good, headers=dapp.headers), 409, "already has 10 webhooks")
        listed = await list_hooks(stack, dapp)
        assert len(listed) == spec.WEBHOOK_MAX_PER_PROJECT and subset["id"] in {h["id"] for h in listed}
        assert all(set(h) >= {"id", "url", "events", "created_at", "delivered", "failed", "pending",
                              "last_error", "next_attempt_at"} and "secret" not in h for h in listed)

        # another project can neither see nor delete them; its own id is not found here either
        theirs = await add_webhook(stack, rival, "https://rival.example/hooks")
        assert await list_hooks(stack, rival) == [
            {k: v for k, v in theirs.items() if k != "secret"} | {
                "delivered": 0, "failed": 0, "pending": 0, "consecutive_failures": 0, "last_error": None,
                "next_attempt_at": None}
        ]
        await refused(await http.delete(f"{base}/{theirs['id']}", headers=dapp.headers), 404, "no webhook")
        await refused(await http.delete(f"{stack.notify_url}/v1/{rival.project_id}/webhooks/{subset['id']}",
                                        headers=rival.headers), 404, "no webhook")
        assert len(await list_hooks(stack, rival)) == 1
        await refused(await http.delete(f"{base}/{uuid.uuid4()}", headers=dapp.headers), 404, "no webhook")

        r = await http.delete(f"{base}/{subset['id']}", headers=dapp.headers)
        assert r.status_code == 204 and r.content == b""
        await refused(await http.delete(f"{base}/{subset['id']}", headers=dapp.headers), 404, "no webhook")
        assert len(await list_hooks(stack, dapp)) == spec.WEBHOOK_MAX_PER_PROJECT - 1
        await add_webhook(stack, dapp, "https://dapp.example/again")  # room for one again


# ----------------------------------------------------------------- the dispatcher, clock injected


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def subscriber(scope: tuple[str, ...] = ()) -> Subscriber:
    return Subscriber(str(uuid.uuid4()), "p", "eip155:1:0xAbC", "eip155:0xabc", "00" * 32, "11" * 32, 0, scope)


async def queue_state(db: Database, webhook_id: str) -> dict[str, Any]:
    async with db.read() as conn:
        row = (await conn.execute(select(dapp_webhooks).where(dapp_webhooks.c.id == webhook_id))).one()
        events = (await conn.execute(
            select(webhook_events.c.id).where(webhook_events.c.webhook == webhook_id,
                                              webhook_events.c.delivered_at.is_(None)))).all()
    return dict(row._mapping) | {"pending": len(events)}


@asynccontextmanager
async def database(url: str) -> AsyncIterator[Database]:
    db = Database(await open_database(url))
    try:
        yield db
    finally:
        await db.close()


async def test_retry_schedule_and_the_three_day_drop(database_url: str) -> None:
    clock = Clock()
    async with database(database_url) as db, receivers(1) as (receiver,):
        async with db.write() as conn:
            project, _ = await store.create_project(conn, name="p", description="", icons=[], now_ms=0)
            hook, _secret = await wh.create_webhook(conn, project, url=receiver.url, events=spec.WEBHOOK_EVENTS,
                                                    now_ms=0)
        dispatcher = wh.WebhookDispatcher(clock=clock, rng=lambda: 0.0, timeout=2, lease=5, guard=LOCAL)
        try:
            async def change(before: Subscriber | None, after: Subscriber | None) -> None:
                async with db.write() as conn:
                    await wh.record_change(conn, project, before, after, now_ms=int(clock() * 1000))

            receiver.status = 503
            first = subscriber(("a",))
            await change(None, first)
            # doubling from 1 s: each failure moves the next attempt out, nothing is tried before then
            for attempt, wait in enumerate([1, 2, 4, 8], start=1):
                await dispatcher.drain(db)
                state = await queue_state(db, hook.id)
                assert (state["attempts"], state["failed"]) == (attempt, attempt)
                assert state["next_attempt_at"] == int((clock() + wait) * 1000)
                await dispatcher.drain(db)
                assert len(receiver.hits) == attempt  # not due yet
                clock.now += wait
            assert state["last_error"] == "HTTP 503: receiver is broken" and state["pending"] == 1

            # the cap and the jitter (80-100 % of the nominal wait)
            assert dispatcher.retry_delay(1) == 1 and dispatcher.retry_delay(11) == 600
            assert dispatcher.retry_delay(10_000) == 600
            jittery = wh.WebhookDispatcher(rng=lambda: 0.999_999)
            assert 0.8 <= jittery.retry_delay(1) < 0.81 and 480 <= jittery.retry_delay(30) < 481
            await jittery.aclose()

            # three days on, the next failure drops what is older than that, counted as failed
            await change(first, None)
            clock.now += spec.WEBHOOK_EVENT_MAX_AGE - 1
            await change(None, subscriber(("b",)))  # young: stays
            clock.now += 2
            await dispatcher.drain(db)
            state = await queue_state(db, hook.id)
            assert state["pending"] == 1 and state["failed"] == 5 + 2 and state["attempts"] == 5

            # the receiver recovers: the young event goes out, the counters reset
            receiver.status = 200
            clock.now += 700
            await dispatcher.drain(db)
            state = await queue_state(db, hook.id)
            assert (state["pending"], state["delivered"], state["attempts"], state["last_error"]) == (0, 1, 0, None)
            assert [h.json["notification_types"] for h in receiver.accepted] == [["b"]]
        finally:
            await dispatcher.aclose()


async def test_one_replica_at_a_time_holds_a_queue(database_url: str) -> None:
    """Two dispatchers on one database (two replicas): a claimed queue is not taken by the other until its
    lease ends; a replica that lost its lease stops; a stopped dispatcher hands its queues back."""
    clock = Clock()
    async with database(database_url) as db1, database(database_url) as db2, receivers(1) as (receiver,):
        async with db1.write() as conn:
            project, _ = await store.create_project(conn, name="p", description="", icons=[], now_ms=0)
            hook, _secret = await wh.create_webhook(conn, project, url=receiver.url, events=spec.WEBHOOK_EVENTS,
                                                    now_ms=0)
            await wh.record_change(conn, project, None, subscriber(), now_ms=0)
            await wh.record_change(conn, project, subscriber(), None, now_ms=1)
        one = wh.WebhookDispatcher(clock=clock, timeout=2, lease=5, guard=LOCAL)
        two = wh.WebhookDispatcher(clock=clock, timeout=2, lease=5, guard=LOCAL)
        try:
            receiver.hang = True
            await one.dispatch(db1)
            await receiver.wait_hits(1)
            assert await two.dispatch(db2) is not None  # due again when the lease ends
            await two.drain(db2)
            assert len(receiver.hits) == 1  # the other replica left it alone

            # one stops while its POST hangs: the queue is handed back and due at once
            await one.aclose(db1)
            assert (await queue_state(db1, hook.id))["next_attempt_at"] <= clock() * 1000
            receiver.hang = False
            await two.drain(db2)
            assert [h.json["event"] for h in receiver.accepted] == ["subscribed", "unsubscribed"]
            assert (await queue_state(db2, hook.id))["delivered"] == 2
        finally:
            receiver.released.set()
            await one.aclose()
            await two.aclose()


async def test_claims_are_exclusive_and_a_stale_holder_is_fenced_off(database_url: str) -> None:
    """The claim is a conditional UPDATE: of two replicas claiming at once, one wins (the other waits for
    its commit, then sees the lease). Once a lease has passed to another replica, the stale holder's
    writes change nothing."""
    async with database(database_url) as db1, database(database_url) as db2:
        async with db1.write() as conn:
            project, _ = await store.create_project(conn, name="p", description="", icons=[], now_ms=0)
            hook, secret = await wh.create_webhook(conn, project, url="http://127.0.0.1:9/", events=["subscribed"],
                                                   now_ms=0)
            await wh.record_change(conn, project, None, subscriber(), now_ms=0)
        async with db1.read() as conn:
            (event,) = [e.id for e in await wh._pending(conn, hook.id, 10)]

        now = 1_000_000
        async with db1.write() as first:
            assert await wh._claim(first, hook.id, now, now + 5000)

            async def rival() -> bool:
                async with db2.write() as conn:
                    return await wh._claim(conn, hook.id, now, now + 5000)

            racing = asyncio.create_task(rival())
            await asyncio.sleep(0.2)
            assert not racing.done()  # waiting for the first claim's transaction
        assert await racing is False

        # the lease ends and the other replica takes the queue; the first one's late writes are refused
        async with db2.write() as conn:
            assert await wh._claim(conn, hook.id, now + 5000, now + 10_000)
        stale = wh._Claim(hook.id, "http://127.0.0.1:9/", secret, now + 5000)
        fresh = wh._Claim(hook.id, "http://127.0.0.1:9/", secret, now + 10_000)
        async with db1.write() as conn:
            assert await wh._record_failure(conn, stale, "late", now + 6000, lambda _n: 1.0) is None
        async with db1.write() as conn:
            await wh._release(conn, stale, now + 6000)
        state = await queue_state(db1, hook.id)
        assert (state["next_attempt_at"], state["failed"], state["last_error"]) == (now + 10_000, 0, None)
        async with db1.write() as conn:
            assert not await wh._record_delivered(conn, stale, event, now + 6000)  # it did arrive: marked
        async with db2.write() as conn:
            assert await wh._record_delivered(conn, fresh, event, now + 6000)  # not counted twice
        state = await queue_state(db1, hook.id)
        assert (state["pending"], state["delivered"]) == (0, 1)


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        (None, ("a",), "subscribed"),
        (None, (), "subscribed"),
        (("a",), ("a",), None),
        (("a", "b"), ("b", "a"), None),
        (("a",), ("b",), "updated"),
        (("a",), (), "updated"),
        (("a",), None, "unsubscribed"),
        (None, None, None),
    ],
)
def test_which_change_is_which_event(
    before: tuple[str, ...] | None, after: tuple[str, ...] | None, event: str | None
) -> None:
    old = subscriber(before) if before is not None else None
    new = subscriber(after) if after is not None else None
    assert wh.change_event(old, new) == event
