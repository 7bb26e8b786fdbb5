"""A broadcast's audience, delivered a part at a time: the queries behind ``POST /v1/{projectId}/notify/broadcast``.

The request writes one ``broadcast_parts`` row per ``batch`` recipients, not one delivery row per recipient.
A delivery worker takes a part, reads its next page of recipients, publishes their messages, and writes their
``subscriber_notifications`` rows once, as published, in the transaction that moves the part's cursor
(``done_to``). Queueing every recipient's row in the request (one ``INSERT … SELECT``) held the request and,
on SQLite, the one writer for 0.1 to 0.5 s per 10,000 recipients, with nothing delivered meanwhile, and each
row was then written again when it was claimed and when it was settled; now delivery starts at once, and a
delivered row is written once (docs/performance.md has the figures).

The audience of a part: the subscribers of the notification's type (with the type in scope when their page is
read), created by ``audience_at`` (the broadcast's time), with no delivery row for the notification yet (a
resend, or a ``/notify`` under the same ``notification_id``, reaches nobody twice), and an id in
``(after_id, upto_id]``. Parts split the audience in id order at the request, ``batch`` recipients each.

How a part is held while its page is published is the delivery queue's rule (:mod:`wcnotify.notify.delivery`):
on PostgreSQL a row lock (``FOR UPDATE SKIP LOCKED``), on SQLite a lease (``held_until``). Either way a crash
between publish and commit publishes the page again, and the message ids are derived from (notification,
subscriber) by :func:`delivery_id`, so a repeat carries the same ``msg.id``, which the wallet drops.

A part that is withdrawn or given up keeps how many of its recipients were never published (``pending``),
which the notification's status reports as withdrawn or failed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import and_, case, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from wcnotify.notify.store import new_id
from wcnotify.storage.tables import (
    broadcast_parts,
    notifications,
    projects,
    subscriber_notifications,
    subscriber_scopes,
    subscribers,
)

OPEN = "open"
DONE = "done"
WITHDRAWN = "withdrawn"
FAILED = "failed"

_bp = broadcast_parts
_ss = subscriber_scopes
_sn = subscriber_notifications
_AUDIENCE_FROM = _ss.join(subscribers, subscribers.c.id == _ss.c.subscriber)
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def delivery_id(notification: str, subscriber: str) -> str:
    """The ``msg.id`` of ``notification``'s delivery to ``subscriber``: the same for every attempt, so a page
    published again after a crash carries the ids the wallets already have. A keyed hash (the key is the
    notification's internal random id) shaped as a version-4 UUID, like the ids of the other paths."""
    h = hashlib.blake2b(subscriber.encode(), key=notification.encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def _audience(notification: Any, type_id: Any, project: Any, audience_at: Any) -> list[ColumnElement[bool]]:
    """The WHERE of a broadcast's recipients over ``subscriber_scopes JOIN subscribers`` (module docstring)."""
    has_row = exists().where(_sn.c.notification == notification, _sn.c.subscriber == _ss.c.subscriber)
    return [
        _ss.c.type_id == type_id, subscribers.c.project == project, subscribers.c.created_at <= audience_at,
        ~has_row,
    ]


def _in_part(after_id: Any, upto_id: Any) -> list[ColumnElement[bool]]:
    """Subscriber ids in ``(after_id, upto_id]``, the bounds being the columns of a part."""
    return [_ss.c.subscriber > after_id, or_(upto_id.is_(None), _ss.c.subscriber <= upto_id)]


# ------------------------------------------------------------------------------------------ the request


async def create_parts(
    conn: AsyncConnection, *, notification: str, project: str, type_id: str, now_ms: int, size: int
) -> int:
    """Split the notification's audience into parts of ``size`` recipients (in id order) and queue them: how
    many recipients there are. Open parts of an earlier broadcast of the same notification are closed first:
    the new parts cover their recipients too (none of whom has a row yet)."""
    await conn.execute(
        update(_bp).where(_bp.c.notification == notification, _bp.c.status == OPEN).values(status=DONE, pending=0)
    )
    ranked = (
        select(_ss.c.subscriber, func.row_number().over(order_by=_ss.c.subscriber).label("rn"),
               func.count().over().label("total"))
        .select_from(_AUDIENCE_FROM)
        .where(*_audience(notification, type_id, project, now_ms))
        .subquery()
    )
    # one pass over the audience: the last id of every part but the last, and the count (on the last row)
    rows = (
        await conn.execute(
            select(ranked.c.subscriber, ranked.c.rn, ranked.c.total)
            .where(or_(and_(ranked.c.rn % size == 0, ranked.c.rn < ranked.c.total), ranked.c.rn == ranked.c.total))
            .order_by(ranked.c.rn)
        )
    ).all()
    total = int(rows[-1].total) if rows else 0
    if not total:
        return 0
    bounds = ["", *(r.subscriber for r in rows[:-1])]
    parts = [
        {
            "id": new_id(), "notification": notification, "audience_at": now_ms, "after_id": after,
            "upto_id": bounds[i + 1] if i + 1 < len(bounds) else None, "done_to": after,
            "pending": size if i + 1 < len(bounds) else total - size * i, "status": OPEN, "held_until": 0,
            "created_at": now_ms,
        }
        for i, after in enumerate(bounds)
    ]
    await conn.execute(_bp.insert(), parts)
    return total


# ------------------------------------------------------------------------------------- the delivery side


class Part(NamedTuple):
    """A part taken by a delivery worker, with what building its recipients' messages needs."""

    id: str
    notification: str
    audience_at: int
    upto_id: str | None
    done_to: str
    created_at: int  # the notification's (msg.sent_at)
    type: str
    title: str
    body: str
    icon: str | None
    url: str | None
    project: str
    app_domain: str
    authentication_private: str


_PART_COLUMNS = (
    _bp.c.id, _bp.c.notification, _bp.c.audience_at, _bp.c.upto_id, _bp.c.done_to, notifications.c.created_at,
    notifications.c.type, notifications.c.title, notifications.c.body, notifications.c.icon, notifications.c.url,
    projects.c.id.label("project"), projects.c.app_domain, projects.c.authentication_private,
)
_PART_FROM = _bp.join(notifications, notifications.c.id == _bp.c.notification).join(
    projects, projects.c.id == notifications.c.project
)


class Recipient(NamedTuple):
    subscriber: str
    account: str
    sym_key: str
    topic: str


async def lock_part(conn: AsyncConnection) -> Part | None:
    """PostgreSQL: lock the oldest open part no other transaction holds, in ``conn``'s transaction."""
    query = (
        select(*_PART_COLUMNS).select_from(_PART_FROM).where(_bp.c.status == OPEN)
        .order_by(_bp.c.created_at, _bp.c.id).limit(1).with_for_update(of=_bp, skip_locked=True)
    )
    row = (await conn.execute(query)).first()
    return Part._make(row) if row else None


async def lease_part(conn: AsyncConnection, now_ms: int, lease_ms: int) -> Part | None:
    """SQLite: lease the oldest open part whose lease (if any) has ended, until ``now_ms + lease_ms``."""
    query = (
        select(*_PART_COLUMNS).select_from(_PART_FROM).where(_bp.c.status == OPEN, _bp.c.held_until <= now_ms)
        .order_by(_bp.c.created_at, _bp.c.id).limit(1)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    await conn.execute(update(_bp).where(_bp.c.id == row.id).values(held_until=now_ms + lease_ms))
    return Part._make(row)


async def release_part(conn: AsyncConnection, part: Part) -> None:
    """SQLite: end the lease early (the relay was unreachable: the page was not published)."""
    await conn.execute(update(_bp).where(_bp.c.id == part.id).values(held_until=0))


@dataclass(frozen=True)
class Page:
    """The next stretch of a part: its recipients, and how far it reached."""

    recipients: list[Recipient]
    last: str  # the last subscriber id looked at: the part's done_to once the page is written
    exhausted: bool  # nothing of the part is left after ``last``


async def next_page(conn: AsyncConnection, part: Part, limit: int) -> Page:
    """The next ``limit`` subscribers of the type after ``done_to`` in the part, and those of them who are
    recipients. The ids come from one range of the ``(type_id, subscriber)`` index, whatever the planner knows
    of the tables: with a join over the whole audience PostgreSQL's generic plan (asyncpg prepares statements)
    sorted every subscriber of the project per page, 170 ms where this takes a few."""
    bounds = [_ss.c.type_id == part.type, _ss.c.subscriber > part.done_to]
    if part.upto_id is not None:
        bounds.append(_ss.c.subscriber <= part.upto_id)
    scanned = select(_ss.c.subscriber).where(*bounds).order_by(_ss.c.subscriber).limit(limit).subquery()
    had = exists().where(_sn.c.notification == part.notification, _sn.c.subscriber == scanned.c.subscriber)
    member = and_(subscribers.c.id == scanned.c.subscriber, subscribers.c.project == part.project,
                  subscribers.c.created_at <= part.audience_at)
    query = (
        select(scanned.c.subscriber, subscribers.c.account, subscribers.c.sym_key, subscribers.c.topic,
               had.label("had"))
        .select_from(scanned.outerjoin(subscribers, member))
        .order_by(scanned.c.subscriber)
    )
    rows = (await conn.execute(query)).all()
    recipients = [Recipient(r.subscriber, r.account, r.sym_key, r.topic) for r in rows
                  if r.account is not None and not r.had]
    last = rows[-1].subscriber if rows else part.done_to
    exhausted = len(rows) < limit or (part.upto_id is not None and last == part.upto_id)
    return Page(recipients, last, exhausted)


# the page's rows in one statement, whatever their number: SQLAlchemy's executemany of 500 parameter sets
# cost about 20 µs a row in Python; these hand the ids over as one JSON text (SQLite) or two arrays (asyncpg)
_PUBLISHED_SQLITE = text(
    "INSERT INTO subscriber_notifications (id, notification, subscriber, status, is_read, created_at, updated_at,"
    " attempts, next_attempt_at) SELECT json_extract(value, '$[0]'), :notification, json_extract(value, '$[1]'),"
    " 'published', 0, :created_at, :now_ms, 1, :now_ms FROM json_each(:rows) WHERE true ON CONFLICT DO NOTHING"
)
_PUBLISHED_POSTGRES = text(
    "INSERT INTO subscriber_notifications (id, notification, subscriber, status, is_read, created_at, updated_at,"
    " attempts, next_attempt_at) SELECT u.id, :notification, u.subscriber, 'published', false, :created_at,"
    " :now_ms, 1, :now_ms FROM unnest(CAST(:ids AS VARCHAR[]), CAST(:subscribers AS VARCHAR[]))"
    " AS u(id, subscriber) ON CONFLICT DO NOTHING"
)


async def write_published(
    conn: AsyncConnection, part: Part, published: Sequence[tuple[str, str]], now_ms: int
) -> None:
    """Write the delivery rows of ``published`` ``(msg id, subscriber)`` pairs as published (attempt 1)."""
    if not published:
        return
    params: dict[str, Any] = {"notification": part.notification, "created_at": part.created_at, "now_ms": now_ms}
    if conn.dialect.name == "postgresql":
        await conn.execute(_PUBLISHED_POSTGRES, {**params, "ids": [i for i, _ in published],
                                                 "subscribers": [s for _, s in published]})
    else:
        await conn.execute(_PUBLISHED_SQLITE, {**params, "rows": orjson.dumps(published).decode()})


async def advance(conn: AsyncConnection, part: Part, page: Page) -> None:
    """Move the part past ``page`` (its rows are written); the part is done once nothing is left after it. A part
    withdrawn meanwhile (SQLite: a lease does not stop a withdrawal) keeps its status, and its ``pending``
    loses what this page published."""
    covered = len(page.recipients)
    counted_down = case((_bp.c.pending > covered, _bp.c.pending - covered), else_=0)
    values: dict[str, Any] = {"done_to": page.last, "held_until": 0, "pending": counted_down}
    if page.exhausted:
        is_open = _bp.c.status == OPEN
        values |= {"status": case((is_open, DONE), else_=_bp.c.status),
                   "pending": case((is_open, 0), else_=counted_down)}
    await conn.execute(update(_bp).where(_bp.c.id == part.id).values(values))


# ----------------------------------------------------------------------------------- counts and endings


def _remaining_query(where: Sequence[ColumnElement[bool]]) -> Any:
    """Per part matching ``where``: its recipients not yet published (exact, counted now)."""
    n = notifications
    has_row = exists().where(_sn.c.notification == _bp.c.notification, _sn.c.subscriber == _ss.c.subscriber)
    return (
        select(_bp.c.id, _bp.c.notification, func.count().label("left"))
        .select_from(
            _bp.join(n, n.c.id == _bp.c.notification)
            .join(_ss, and_(_ss.c.type_id == n.c.type, *_in_part(_bp.c.done_to, _bp.c.upto_id)))
            .join(subscribers, and_(subscribers.c.id == _ss.c.subscriber, subscribers.c.project == n.c.project,
                                    subscribers.c.created_at <= _bp.c.audience_at))
        )
        .where(*where, ~has_row)
        .group_by(_bp.c.id, _bp.c.notification)
    )


@dataclass
class PartCounts:
    """What a notification's parts add to its status: recipients still queued, withdrawn, given up."""

    queued: int = 0
    withdrawn: int = 0
    failed: int = 0


async def part_counts(conn: AsyncConnection, notification_ids: Sequence[str]) -> dict[str, PartCounts]:
    """For each of these notifications that was broadcast, what its parts add to its counts."""
    counts: dict[str, PartCounts] = {}
    if not notification_ids:
        return counts
    ids = list(notification_ids)
    for _part, notification, left in await conn.execute(
        _remaining_query([_bp.c.notification.in_(ids), _bp.c.status == OPEN])
    ):
        counts.setdefault(notification, PartCounts()).queued += int(left)
    for notification, status, pending in await conn.execute(
        select(_bp.c.notification, _bp.c.status, func.sum(_bp.c.pending))
        .where(_bp.c.notification.in_(ids), _bp.c.status.in_((WITHDRAWN, FAILED)))
        .group_by(_bp.c.notification, _bp.c.status)
    ):
        entry = counts.setdefault(notification, PartCounts())
        if status == WITHDRAWN:
            entry.withdrawn += int(pending or 0)
        else:
            entry.failed += int(pending or 0)
    return counts


async def close_parts(conn: AsyncConnection, where: Sequence[ColumnElement[bool]], status: str) -> int:
    """Close the open parts matching ``where`` as ``status`` (withdrawn or failed), each keeping how many of its
    recipients were not published; returns that number. On PostgreSQL a part a worker is publishing is
    waited for (its lock), so its page is not counted; on SQLite it is, until the worker's write takes it off."""
    query = select(_bp.c.id).where(*where, _bp.c.status == OPEN)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()  # a part a worker holds is re-read once it commits (done: left out)
    ids = [r.id for r in await conn.execute(query)]
    if not ids:
        return 0
    left = {part: int(n) for part, _notification, n in await conn.execute(_remaining_query([_bp.c.id.in_(ids)]))}
    for part in ids:
        await conn.execute(update(_bp).where(_bp.c.id == part).values(status=status, pending=left.get(part, 0)))
    return sum(left.values())


def parts_of(notification: str) -> list[ColumnElement[bool]]:
    return [_bp.c.notification == notification]


def parts_older_than(created_before_ms: int, now_ms: int) -> list[ColumnElement[bool]]:
    """Parts of notifications created before ``created_before_ms`` that no SQLite worker holds now."""
    older = select(notifications.c.id).where(notifications.c.created_at <= created_before_ms)
    return [_bp.c.notification.in_(older.scalar_subquery()), _bp.c.held_until <= now_ms]


async def pending_total(conn: AsyncConnection) -> int:
    """Recipients of open parts not yet published, as the parts count them down (for /metrics: no scan)."""
    total = await conn.scalar(select(func.coalesce(func.sum(_bp.c.pending), 0)).where(_bp.c.status == OPEN))
    return int(total or 0)
