"""Durable delivery: workers that publish queued ``subscriber_notifications`` rows, and the recipients of
broadcasts, to the relay.

Each worker loops: take a batch of due rows (or, when none is due, the next page of a broadcast part:
:mod:`wcnotify.notify.broadcasts`), build one ``wc_notifyMessage`` per recipient (``messageAuth`` signed by
the project's authentication key, sealed under the subscriber's key), publish them with
``irn_batchPublish`` and settle: mark the rows published (a broadcast page's rows are written then, as
published, with the part's cursor). How a batch or a part is held depends on the database:

* **PostgreSQL: a row lock.** The worker selects the due rows ``FOR UPDATE SKIP LOCKED`` in one transaction,
  joined with what their messages need, keeps that transaction open while it publishes, and marks the rows
  published in it. Replicas skip locked rows, so no two take the same row; a worker that dies (kill -9)
  drops its connection, the transaction rolls back and the rows are due again at once. Each row is written
  once (the settle): the lease below cost a second full row version per delivery, which on PostgreSQL means
  a new entry in every index of the table; without it the database's CPU per delivery row fell by about a
  fifth (85-96 to 64-85 µs, docs/performance.md).
* **SQLite: a lease.** One writer at a time cannot hold a transaction open across a publish, so the claim
  is its own write (``status='processing'``, ``next_attempt_at`` = the lease's deadline), the rows are read by
  a second query, and a sweeper returns rows whose claimer died to the queue when the lease ends.

Either way a crash between publish and settle means the rows are published again: their wallets may get the
same ``msg.id`` twice, which they drop; nobody misses one.

Two kinds of failure, treated differently (the reference treats both as "requeue now", forever cycling):

* the relay is unreachable, times out or rate-limits us: nothing is wrong with the rows. They go back to the
  queue unchanged and every worker of this process pauses, probing with a growing delay. When the relay is
  back the whole backlog drains at full speed, not one retry tick at a time.
* the relay refuses a message: the batch is split to find it, and only that row is retried, with exponential
  backoff and jitter. Rows not published within a day of their notification become ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from wcnotify import spec
from wcnotify.notify import broadcasts
from wcnotify.notify.payload_ids import next_payload_id
from wcnotify.notify.relay_link import RelayLink
from wcnotify.notify.sending import FAILED, PROCESSING, PUBLISHED, QUEUED, insert_ignoring_duplicates
from wcnotify.notify.store import Database
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.crypto import Ed25519KeyPair, encode_type0, key_from_hex
from wcnotify.protocol.did import Account, did_web, encode_did_key
from wcnotify.protocol.jwt import NotifyMessageClaims, encode_jwt
from wcnotify.relay.client import RelayClientError, RelayRequestError
from wcnotify.storage.tables import notifications, projects, subscriber_notifications, subscribers

log = logging.getLogger("wcnotify.notify.delivery")

# relay errors that say nothing about the message: wait and publish it again
_TRANSIENT = (spec.RelayError.TOO_MANY_REQUESTS, spec.RelayError.INTERNAL)
SWEEP_INTERVAL = 10.0  # s between sweeps for expired claims and rows past the give-up age
# s a worker that found no due row goes on with broadcast pages before it looks again (unless woken by a
# send): looking is a transaction of its own, a millisecond of this process's time per page on SQLite
ROWS_RECHECK = 0.05


@dataclass(frozen=True)
class DeliveryConfig:
    batch: int = spec.NOTIFY_DELIVERY_BATCH
    workers: int = spec.NOTIFY_DELIVERY_WORKERS
    lease: float = spec.NOTIFY_DELIVERY_LEASE
    give_up: float = spec.NOTIFY_DELIVERY_GIVE_UP
    backoff: tuple[float, float] = spec.NOTIFY_DELIVERY_BACKOFF
    outage_backoff: tuple[float, float] = spec.NOTIFY_DELIVERY_OUTAGE_BACKOFF
    poll: float = spec.NOTIFY_DELIVERY_POLL


class Delivery(NamedTuple):
    """A claimed row with everything needed to build its message.

    A named tuple, not a frozen dataclass: a claim makes one per row, and a frozen dataclass's ``__init__``
    (one ``object.__setattr__`` per field) took a tenth of a claim's time; a tuple is made in one step."""

    id: str
    attempts: int
    created_at: int  # ms, msg.sent_at: the notification's creation (a welcome's: the subscribe)
    type: str
    title: str
    body: str
    icon: str | None
    url: str | None
    account: str
    sym_key: str
    topic: str
    project: str
    app_domain: str
    authentication_private: str


_sn = subscriber_notifications
# what building a claimed row's message needs, in Delivery's field order: a row then makes a Delivery
# positionally (Delivery(**row._mapping) was a third of a claim's CPU); the ids are one expanding parameter,
# not 500 literals coerced one by one on every claim
DELIVERY_COLUMNS = (
    _sn.c.id, _sn.c.attempts, _sn.c.created_at, notifications.c.type, notifications.c.title, notifications.c.body,
    notifications.c.icon, notifications.c.url, subscribers.c.account, subscribers.c.sym_key, subscribers.c.topic,
    projects.c.id.label("project"), projects.c.app_domain, projects.c.authentication_private,
)
_DELIVERY_JOIN = (
    notifications.c.id == _sn.c.notification, subscribers.c.id == _sn.c.subscriber,
    projects.c.id == subscribers.c.project,
)
_LOAD_DELIVERIES = select(*DELIVERY_COLUMNS).where(*_DELIVERY_JOIN, _sn.c.id.in_(bindparam("ids", expanding=True)))
# a locked row is still queued, and its attempt is counted when it is settled: ``attempts`` is this attempt's
# number, as a lease claim's (which counts it when claiming)
_LOCKED_COLUMNS = (_sn.c.id, (_sn.c.attempts + 1).label("attempts"), *DELIVERY_COLUMNS[2:])
_MARK_PUBLISHED = (
    update(_sn).where(_sn.c.id.in_(bindparam("ids", expanding=True)), _sn.c.status == PROCESSING)
    .values(status=PUBLISHED, updated_at=bindparam("now_ms"), last_error=None)
)
# no status condition: the rows are locked by us, and with one the planner may scan every queued row
# (status='queued' is most of the index while a broadcast drains) to filter it by the 500 ids
_MARK_LOCKED_PUBLISHED = (
    update(_sn).where(_sn.c.id.in_(bindparam("ids", expanding=True)))
    .values(status=PUBLISHED, updated_at=bindparam("now_ms"), last_error=None, attempts=_sn.c.attempts + 1)
)


class ProjectSigner:
    """A project's key and the claims that do not change per message (decoded once per batch)."""

    def __init__(self, authentication_private: str, app_domain: str) -> None:
        self.key = Ed25519KeyPair.from_seed(bytes.fromhex(authentication_private))
        self.iss = encode_did_key(self.key.public_key)
        self.app = did_web(app_domain)
        self._template: tuple[int, dict[str, Any]] | None = None

    def claims(self, now: int) -> dict[str, Any]:
        """The ``messageAuth`` claims shared by every message signed at ``now``, in the order ``to_claims``
        writes them (``sub`` and ``msg`` are placeholders each message overwrites, keeping that order).

        Made once per batch instead of through ``NotifyMessageClaims`` per message, whose ``to_claims``
        (dataclass fields, ordering) cost a tenth of building a message."""
        if self._template is None or self._template[0] != now:
            claims = NotifyMessageClaims(
                iat=now, exp=now + spec.NOTIFY_MESSAGE.request_ttl, iss=self.iss, sub="", app=self.app, msg={}
            ).to_claims()
            self._template = (now, claims)
        return self._template[1]


def build_message(delivery: Delivery, signer: ProjectSigner, now: int, rpc_id: int) -> dict[str, Any]:
    """The relay publish params of one ``wc_notifyMessage`` (protocol.md §3c, reference-server.md §4)."""
    msg = {
        "id": delivery.id, "sent_at": delivery.created_at, "type": delivery.type, "title": delivery.title,
        "body": delivery.body, "icon": delivery.icon or "", "url": delivery.url or "", "is_read": False,
    }
    rpc = spec.NOTIFY_MESSAGE
    claims = {**signer.claims(now), "sub": Account.parse(delivery.account).did_pkh, "msg": msg}
    # encode_jwt, not Claims.sign: sign checks iss against the key by encoding the key as a did:key again,
    # a base58 encoding per message that cost a quarter of the build; signer.iss comes from this very key
    jwt = encode_jwt(claims, signer.key)
    payload = jsonrpc.Request(rpc_id, rpc.method, {rpc.params_key: jwt})
    message = encode_type0(key_from_hex(delivery.sym_key), jsonrpc.encode(payload))
    return {"topic": delivery.topic, "message": message, "ttl": rpc.request_ttl, "tag": rpc.request_tag,
            "prompt": rpc.prompt}


class _RelayOutage(Exception):
    """The relay could not be reached (or rate-limited us): a pause for everyone, not a row's fault."""


class Deliverer:
    """The delivery workers of one server process; :meth:`wake` after committing new rows."""

    def __init__(
        self, db: Database, relay: RelayLink, *, config: DeliveryConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.relay = relay
        self.config = config or DeliveryConfig()
        self.clock = clock
        self._wake = asyncio.Event()
        # PostgreSQL holds a batch by its row locks for as long as it is published (module docstring)
        self.locks_rows = db.engine.dialect.name == "postgresql"
        self.in_flight = 0  # rows this process holds and is publishing now (for /metrics)
        self._outage_until = 0.0
        self._outage_delay = 0.0
        self._rows_idle_until = 0.0  # monotonic time before which work_once does not look for due rows
        self.published = 0  # counters for /metrics and tests
        self.refused = 0
        self.failed = 0  # rows given up by this process (refused past the give-up age, or swept)
        self.outages = 0
        # called once per batch the relay acknowledged: (rows, seconds from the claim to the ack); /metrics
        # turns it into the publish latency histogram (notify/metrics.py)
        self.on_published: Callable[[int, float], None] | None = None

    def wake(self) -> None:
        """New deliveries were committed: rows or a broadcast (rows are looked at before the next page)."""
        self._rows_idle_until = 0.0
        self._wake.set()

    async def run(self) -> None:
        """Run the workers and the sweeper until cancelled."""
        tasks = [asyncio.create_task(self._worker(), name=f"delivery-{i}") for i in range(self.config.workers)]
        tasks.append(asyncio.create_task(self._sweeper(), name="delivery-sweeper"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # ------------------------------------------------------------------------------------- loop

    async def _worker(self) -> None:
        while True:
            pause = self._outage_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            self._wake.clear()
            try:
                found = await self.work_once()
            except SQLAlchemyError as exc:
                # a lease's rows stay claimed and the sweeper requeues them after the lease; a lock's rows
                # were rolled back and are due again now
                log.warning("delivering a batch failed: %s", exc)
                await asyncio.sleep(self.config.poll)
                continue
            if not found:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.poll)

    async def work_once(self) -> bool:
        """Deliver one batch: due rows first (sends to accounts, welcome notifications, retries), else the next
        page of a broadcast, so a send to a few accounts never waits behind a large audience. False when
        neither had anything due."""
        if time.monotonic() >= self._rows_idle_until:
            if await self._rows_once():
                return True
            self._rows_idle_until = time.monotonic() + ROWS_RECHECK
        return await self._page_once()

    async def _rows_once(self) -> bool:
        if not self.locks_rows:
            claimed = await self.claim()
            if not claimed:
                return False
            self._wake.set()  # there may be more: let an idle worker claim the next batch meanwhile
            await self.deliver(claimed)
            return True
        async with self.db.write() as conn:
            locked = await self._lock_due(conn)
            if not locked:
                return False
            self._wake.set()
            await self.deliver(locked, conn)
        return True

    async def _page_once(self) -> bool:
        """Take an open broadcast part (a row lock on PostgreSQL, a lease on SQLite, as the rows above), read
        its next page of recipients, publish it and write their rows (:mod:`wcnotify.notify.broadcasts`)."""
        async with self.db.write() as conn:
            if self.locks_rows:
                part = await broadcasts.lock_part(conn)
            else:
                part = await broadcasts.lease_part(conn, self._now_ms(), int(self.config.lease * 1000))
            if part is None:
                return False
            page = await broadcasts.next_page(conn, part, self.config.batch)
            self._wake.set()  # there may be more: let an idle worker take the next part meanwhile
            if self.locks_rows:  # published and written while the lock is held
                await self._deliver_page(part, page, conn)
                return True
        await self._deliver_page(part, page, None)  # the lease is taken: published outside the writer's turn
        return True

    async def _sweeper(self) -> None:
        while True:
            try:
                await self.sweep()
            except SQLAlchemyError as exc:
                log.warning("delivery sweep failed: %s", exc)
            await asyncio.sleep(SWEEP_INTERVAL)

    # ------------------------------------------------------------------------------- the queue

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def claim(self) -> list[Delivery]:
        """Claim up to ``batch`` due rows (oldest due first) and load what building their messages needs."""
        sn = subscriber_notifications
        now_ms = self._now_ms()
        due = (
            select(sn.c.id)
            .where(sn.c.status == QUEUED, sn.c.next_attempt_at <= now_ms)
            .order_by(sn.c.next_attempt_at)
            .limit(self.config.batch)
            .with_for_update(skip_locked=True)
        )
        claim = update(sn).values(status=PROCESSING, next_attempt_at=now_ms + int(self.config.lease * 1000),
                                  attempts=sn.c.attempts + 1, updated_at=now_ms)
        async with self.db.write() as conn:
            if conn.dialect.name == "postgresql":
                # one statement: PostgreSQL's UPDATE … FROM returns the joined columns too, so the rows need no
                # second query with 500 ids (SQLite's RETURNING may name only the updated table)
                rows = await conn.execute(
                    claim.where(sn.c.id == due.subquery().c.id, *_DELIVERY_JOIN).returning(*DELIVERY_COLUMNS)
                )
                return [Delivery._make(r) for r in rows]
            ids = [r.id for r in await conn.execute(claim.where(sn.c.id.in_(due.scalar_subquery())).returning(sn.c.id))]
            if not ids:
                return []
            return [Delivery._make(r) for r in await conn.execute(_LOAD_DELIVERIES, {"ids": ids})]

    async def _lock_due(self, conn: AsyncConnection) -> list[Delivery]:
        """PostgreSQL: lock up to ``batch`` due rows (oldest due first) in ``conn``'s transaction and read
        what building their messages needs, in one statement; rows other transactions hold are skipped."""
        sn = subscriber_notifications
        due = (
            select(sn.c.id)
            .where(sn.c.status == QUEUED, sn.c.next_attempt_at <= self._now_ms())
            .order_by(sn.c.next_attempt_at)
            .limit(self.config.batch)
            .with_for_update(skip_locked=True)
            .subquery()
        )
        rows = await conn.execute(select(*_LOCKED_COLUMNS).where(sn.c.id == due.c.id, *_DELIVERY_JOIN))
        return [Delivery._make(r) for r in rows]

    async def sweep(self) -> tuple[int, int]:
        """Requeue rows whose claim expired; fail queued rows and broadcast recipients past the give-up age.
        Returns both counts."""
        sn = subscriber_notifications
        now_ms = self._now_ms()
        async with self.db.write() as conn:
            expired = await conn.execute(
                update(sn).where(sn.c.status == PROCESSING, sn.c.next_attempt_at <= now_ms)
                .values(status=QUEUED, updated_at=now_ms)
            )
            give_up_before = now_ms - int(self.config.give_up * 1000)
            too_old = await conn.execute(
                update(sn).where(sn.c.status == QUEUED, sn.c.created_at <= give_up_before)
                .values(status=FAILED, updated_at=now_ms, last_error="not published within the give-up time")
            )
            # a broadcast's recipients not published within the give-up time, in parts no worker holds
            failed = int(too_old.rowcount or 0) + await broadcasts.close_parts(
                conn, broadcasts.parts_older_than(give_up_before, now_ms), broadcasts.FAILED
            )
        self.failed += failed
        return int(expired.rowcount or 0), failed

    async def queue_depth(self) -> dict[str, int]:
        """Rows queued and in flight, and a broadcast's recipients not yet published as queued (for /metrics)."""
        sn = subscriber_notifications
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(sn.c.status, func.count()).where(sn.c.status.in_((QUEUED, PROCESSING))).group_by(sn.c.status)
            )
            counts = {status: int(n) for status, n in rows}
            pending = await broadcasts.pending_total(conn)  # a broadcast's recipients not published yet
        return {QUEUED: counts.get(QUEUED, 0) + pending, PROCESSING: counts.get(PROCESSING, 0)}

    # ----------------------------------------------------------------------------- publishing

    async def deliver(self, batch: Sequence[Delivery], locked_in: AsyncConnection | None = None) -> None:
        """Publish ``batch`` and settle every row: published, retried later, or back in the queue.

        ``locked_in`` is the transaction holding the rows' locks (PostgreSQL); the rows are settled in it.
        Without it the rows are claimed (``processing``), and settled in a write of their own."""
        refused = await self._publish_batch(batch)
        if refused is None:  # the relay is away: the rows go back as they were
            if locked_in is None:  # locked rows are still queued and unchanged: committing frees them
                await self._release(batch)
            return
        done = [d.id for d in batch if d.id not in refused]
        by_id = {d.id: d for d in batch}
        if locked_in is not None:
            await self._settle_in(locked_in, done, refused, by_id, held=QUEUED)
            return
        async with self.db.write() as conn:
            await self._settle_in(conn, done, refused, by_id, held=PROCESSING)

    async def _deliver_page(
        self, part: broadcasts.Part, page: broadcasts.Page, locked_in: AsyncConnection | None
    ) -> None:
        """Publish a broadcast page and write its rows: published, or queued for a retry (refused messages);
        then move the part on. ``locked_in`` as for :meth:`deliver`; without it the part is leased."""
        batch = [
            Delivery(broadcasts.delivery_id(part.notification, r.subscriber), 1, part.created_at, part.type,
                     part.title, part.body, part.icon, part.url, r.account, r.sym_key, r.topic, part.project,
                     part.app_domain, part.authentication_private)
            for r in page.recipients
        ]
        refused = await self._publish_batch(batch) if batch else {}
        if refused is None:
            if locked_in is None:
                async with self.db.write() as conn:
                    await broadcasts.release_part(conn, part)
            return
        published = [(d.id, r.subscriber) for d, r in zip(batch, page.recipients, strict=True) if d.id not in refused]
        retries = [
            {"id": d.id, "notification": part.notification, "subscriber": r.subscriber, "is_read": False,
             "created_at": part.created_at, **self._refused_values(d, refused[d.id], self._now_ms())}
            for d, r in zip(batch, page.recipients, strict=True) if d.id in refused
        ]

        async def settle(conn: AsyncConnection) -> None:
            await broadcasts.write_published(conn, part, published, self._now_ms())
            if retries:
                await conn.execute(insert_ignoring_duplicates(conn, subscriber_notifications), retries)
            await broadcasts.advance(conn, part, page)

        if locked_in is not None:
            await settle(locked_in)
            return
        async with self.db.write() as conn:
            await settle(conn)

    async def _publish_batch(self, batch: Sequence[Delivery]) -> dict[str, str] | None:
        """Build and publish ``batch``: the ids the relay refused, each with its reason, or None when the relay
        could not be reached (every worker of this process then pauses)."""
        self.in_flight += len(batch)
        try:
            started = time.monotonic()  # the rows were claimed or locked just now (work_once calls us right after)
            now = int(self.clock())
            signers: dict[str, ProjectSigner] = {}
            messages = []
            for d in batch:
                signer = signers.get(d.project)
                if signer is None:
                    signer = signers[d.project] = ProjectSigner(d.authentication_private, d.app_domain)
                messages.append(build_message(d, signer, now, next_payload_id()))
            try:
                refused = await self._publish(list(batch), messages)
            except _RelayOutage as exc:
                self._note_outage(exc)
                return None
        finally:
            self.in_flight -= len(batch)
        self._outage_delay = 0.0
        if self.on_published is not None:
            self.on_published(len(batch), time.monotonic() - started)
        self.published += len(batch) - len(refused)
        self.refused += len(refused)
        return refused

    async def _publish(self, batch: list[Delivery], messages: list[dict[str, Any]]) -> dict[str, str]:
        """Publish; the rows the relay refused, each with the reason. A refused batch is bisected so one bad
        message does not hold back the others."""
        try:
            await self.relay.publish(messages)
            return {}
        except RelayRequestError as exc:
            if exc.code in _TRANSIENT:
                raise _RelayOutage(str(exc)) from exc
            if len(batch) == 1:
                return {batch[0].id: str(exc)[:255]}
        except RelayClientError as exc:
            raise _RelayOutage(str(exc)) from exc
        half = len(batch) // 2
        return await self._publish(batch[:half], messages[:half]) | await self._publish(batch[half:], messages[half:])

    def _note_outage(self, exc: Exception) -> None:
        first, cap = self.config.outage_backoff
        self._outage_delay = min(self._outage_delay * 2, cap) if self._outage_delay else first
        self._outage_until = max(self._outage_until, time.monotonic() + self._outage_delay)
        self.outages += 1
        log.warning("relay unavailable (%s); delivery pauses %.1f s", exc, self._outage_delay)

    async def _release(self, batch: Sequence[Delivery]) -> None:
        """Give rows back to the queue as they were (an outage is not an attempt)."""
        sn = subscriber_notifications
        async with self.db.write() as conn:
            await conn.execute(
                update(sn).where(sn.c.id.in_([d.id for d in batch]), sn.c.status == PROCESSING)
                .values(status=QUEUED, next_attempt_at=self._now_ms(), attempts=sn.c.attempts - 1)
            )

    async def _settle_in(
        self, conn: AsyncConnection, done: list[str], refused: dict[str, str], by_id: dict[str, Delivery], *,
        held: str,
    ) -> None:
        """Mark ``done`` published and schedule or fail the ``refused`` rows, which are ``held`` (claimed as
        ``processing``, or locked while ``queued``). ``attempts`` is written as this attempt's number."""
        sn = subscriber_notifications
        now_ms = self._now_ms()
        if done:
            mark = _MARK_LOCKED_PUBLISHED if held == QUEUED else _MARK_PUBLISHED
            await conn.execute(mark, {"ids": done, "now_ms": now_ms})
        for row_id, reason in refused.items():
            await conn.execute(
                update(sn).where(sn.c.id == row_id, sn.c.status == held)
                .values(self._refused_values(by_id[row_id], reason, now_ms))
            )

    def _refused_values(self, d: Delivery, reason: str, now_ms: int) -> dict[str, Any]:
        """What a refused row becomes: queued again after an exponential backoff with jitter, or failed once
        its notification is older than the give-up age; this attempt counted, the relay's reason kept."""
        values: dict[str, Any] = {"updated_at": now_ms, "last_error": reason, "attempts": d.attempts}
        if d.created_at <= now_ms - int(self.config.give_up * 1000):
            self.failed += 1
            return {**values, "status": FAILED, "next_attempt_at": now_ms}
        first, cap = self.config.backoff
        delay = min(first * 2 ** (d.attempts - 1), cap) * random.uniform(0.5, 1.0)
        return {**values, "status": QUEUED, "next_attempt_at": now_ms + int(delay * 1000)}
