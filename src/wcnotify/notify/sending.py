"""Enqueueing notifications: the queries behind ``/notify``, the broadcast, the welcome notification,
withdrawals and the status of a notification.

A send only writes: one ``notifications`` row (upserted on the dapp's ``notification_id``, so a resend reuses
it) and, for ``/notify``, one ``subscriber_notifications`` row per recipient, inserted in batches with ``ON
CONFLICT DO NOTHING`` on ``(notification, subscriber)``, so no resend, retry or crash can make a second
delivery; a broadcast writes its audience's parts instead, and their rows are written as they are published
(:mod:`wcnotify.notify.broadcasts`). The delivery workers (:mod:`wcnotify.notify.delivery`) publish both.

Every function takes the caller's connection: a request's writes share one transaction, and a send of
several notifications (``POST /v1/{projectId}/notify``) writes all of them or none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Insert

from wcnotify import spec
from wcnotify.notify import broadcasts, directory
from wcnotify.notify.store import Project, Subscriber, address_of, new_id
from wcnotify.protocol.did import Account
from wcnotify.storage.tables import (
    notification_types,
    notifications,
    subscriber_notifications,
    subscriber_scopes,
    subscribers,
)

INSERT_BATCH = 1000  # rows per INSERT statement (SQLite allows 32766 bound parameters; 7 per row)

QUEUED = "queued"
PROCESSING = "processing"
PUBLISHED = "published"
FAILED = "failed"
WITHDRAWN = "withdrawn"
STATUSES = (QUEUED, PROCESSING, PUBLISHED, FAILED, WITHDRAWN)


@dataclass(frozen=True)
class NotificationIn:
    """A validated notification as a dapp sends it; ``type`` is a notification type id of the project."""

    type: str
    title: str
    body: str
    icon: str | None = None
    url: str | None = None


@dataclass
class SendResult:
    """The reference's answer: lists echo the account strings as the dapp sent them."""

    sent: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    queued: int = 0  # delivery rows written by this request (0 for an idempotent resend)

    def merge(self, other: SendResult) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.not_found += other.not_found
        self.queued += other.queued

    def to_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "not_found": self.not_found}


class UnknownTypeError(Exception):
    """The notification's type is not one of the project's notification types."""


class WithdrawnError(Exception):
    """The dapp withdrew the notification with this ``notification_id``: it is never sent again."""


# ------------------------------------------------------------------------------------------ helpers


def insert_ignoring_duplicates(conn: AsyncConnection, table: Any) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` in the connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


async def project_type_ids(conn: AsyncConnection, project: Project) -> set[str]:
    rows = await conn.execute(select(notification_types.c.id).where(notification_types.c.project == project.id))
    return {r.id for r in rows}


async def upsert_notification(
    conn: AsyncConnection, project: Project, notification: NotificationIn, notification_id: str | None, now_ms: int
) -> tuple[str, int]:
    """The ``notifications`` row for ``notification_id`` (created with a fresh id when absent): its id and
    creation time. A repeated ``notification_id`` keeps the first content, as the reference does; a withdrawn
    one raises :class:`WithdrawnError`."""
    row_id = new_id()
    await conn.execute(
        insert_ignoring_duplicates(conn, notifications).values(
            id=row_id, project=project.id, notification_id=notification_id or row_id, type=notification.type,
            title=notification.title, body=notification.body, icon=notification.icon, url=notification.url,
            created_at=now_ms,
        )
    )
    if notification_id is None:
        return row_id, now_ms
    row = (
        await conn.execute(
            select(notifications.c.id, notifications.c.created_at, notifications.c.withdrawn_at).where(
                notifications.c.project == project.id, notifications.c.notification_id == notification_id
            )
        )
    ).one()
    if row.withdrawn_at is not None:
        raise WithdrawnError(notification_id)
    return row.id, int(row.created_at)


async def queue_deliveries(
    conn: AsyncConnection, notification: str, created_at: int, subscriber_ids: Iterable[str]
) -> int:
    """Queue ``notification`` for each subscriber, in batches; how many rows are new (resends add none)."""
    ids = list(subscriber_ids)
    added = 0
    for start in range(0, len(ids), INSERT_BATCH):
        rows = [
            {
                "id": new_id(), "notification": notification, "subscriber": s, "status": QUEUED, "is_read": False,
                "created_at": created_at, "updated_at": created_at, "attempts": 0, "next_attempt_at": created_at,
            }
            for s in ids[start : start + INSERT_BATCH]
        ]
        # RETURNING counts the new rows on both dialects (asyncpg reports no rowcount for executemany), and
        # SQLAlchemy sends the batch as one multi-row INSERT
        statement = insert_ignoring_duplicates(conn, subscriber_notifications).returning(subscriber_notifications.c.id)
        added += len((await conn.execute(statement, rows)).all())
    return added


# --------------------------------------------------------------------------------------- to accounts


async def send_to_accounts(
    conn: AsyncConnection, project: Project, notification: NotificationIn, *, notification_id: str | None,
    accounts: Sequence[tuple[str, Account]], now_ms: int,
    allow: Callable[[list[str]], Awaitable[set[str]]] | None = None,
) -> SendResult:
    """``/notify``: queue the notification for the subscribed ``(as_sent, parsed)`` accounts.

    Matching is chain-agnostic (``eip155:2:0xA…`` reaches the subscriber stored as ``eip155:1:0xa…``).
    An account subscribed without the notification's type is ``failed`` with the reference's reason; one
    not subscribed at all is ``not_found``. Raises :class:`UnknownTypeError` before writing anything.

    ``allow`` is the per-subscriber rate limit (:meth:`~wcnotify.notify.ratelimit.RateLimits.deliveries`):
    given the matched subscriber ids, it returns those that may get one more notification. The others are
    ``failed`` with "Rate limit exceeded" and not queued, as in the reference (after the scope check, so an
    out-of-scope account spends no token). As there, a resend of a ``notification_id`` spends tokens too.
    """
    if notification.type not in await project_type_ids(conn, project):
        raise UnknownTypeError(notification.type)
    by_address: dict[str, list[str]] = {}
    for as_sent, account in accounts:
        by_address.setdefault(address_of(account), []).append(as_sent)
    found: dict[str, tuple[str, bool]] = {}  # address -> (subscriber id, has the type)
    addresses = list(by_address)
    for start in range(0, len(addresses), INSERT_BATCH):
        has_type = (
            select(subscriber_scopes.c.subscriber)
            .where(subscriber_scopes.c.subscriber == subscribers.c.id, subscriber_scopes.c.type_id == notification.type)
            .exists()
        )
        rows = await conn.execute(
            select(subscribers.c.id, subscribers.c.address, has_type.label("has_type")).where(
                subscribers.c.project == project.id, subscribers.c.address.in_(addresses[start : start + INSERT_BATCH])
            )
        )
        found |= {r.address: (r.id, bool(r.has_type)) for r in rows}
    result = SendResult()
    matched: list[tuple[str, list[str]]] = []  # (subscriber id, the accounts that named it)
    for address, sent_as in by_address.items():
        match = found.get(address)
        if match is None:
            result.not_found += sent_as
        elif not match[1]:
            result.failed += [{"account": a, "reason": spec.NOTIFY_REASON_NOT_SUBSCRIBED_TO_TYPE} for a in sent_as]
        else:
            matched.append((match[0], sent_as))
    allowed = await allow([s for s, _ in matched]) if allow is not None and matched else None
    recipients = []
    for subscriber_id, sent_as in matched:
        if allowed is not None and subscriber_id not in allowed:
            result.failed += [{"account": a, "reason": spec.NOTIFY_REASON_RATE_LIMITED} for a in sent_as]
        else:
            result.sent += sent_as
            recipients.append(subscriber_id)
    notification_row, created_at = await upsert_notification(conn, project, notification, notification_id, now_ms)
    result.queued = await queue_deliveries(conn, notification_row, created_at, recipients)
    return result


# ----------------------------------------------------------------------------------------- broadcast


async def broadcast(
    conn: AsyncConnection, project: Project, notification: NotificationIn, notification_id: str | None, now_ms: int,
    *, part_size: int,
) -> tuple[str, int]:
    """Queue the notification for every subscriber of its type who has not had it: the notification's id and
    how many that is (0 for a resend that reaches nobody new). The request writes the broadcast's parts of
    ``part_size`` recipients, not their delivery rows (:mod:`wcnotify.notify.broadcasts`)."""
    if notification.type not in await project_type_ids(conn, project):
        raise UnknownTypeError(notification.type)
    notification_row, _created_at = await upsert_notification(conn, project, notification, notification_id, now_ms)
    queued = await broadcasts.create_parts(conn, notification=notification_row, project=project.id,
                                           type_id=notification.type, now_ms=now_ms, size=part_size)
    public_id = (await conn.execute(select(notifications.c.notification_id).where(
        notifications.c.id == notification_row))).scalar_one()
    return public_id, queued


# ------------------------------------------------------------------------------------------ welcome


async def queue_welcome(conn: AsyncConnection, project: Project, subscriber: Subscriber, now_ms: int) -> bool:
    """On a first subscribe: queue the project's welcome notification when it is enabled and its type is in
    the new subscription's scope. Its ``notification_id`` is derived from its content, so every subscriber
    of one version of the welcome shares one notification (and one status), and an edit starts another."""
    welcome = await directory.get_welcome(conn, project)
    if not welcome or not welcome.get("enabled") or welcome.get("type") not in subscriber.scope:
        return False
    content = NotificationIn(welcome["type"], welcome["title"], welcome["body"], None, welcome.get("url") or None)
    digest = hashlib.sha256(orjson.dumps(welcome, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    row, _ = await upsert_notification(conn, project, content, f"welcome-{digest}", now_ms)
    # the row's sent_at is the subscribe time, not the welcome's first use: it is new to this subscriber
    return await queue_deliveries(conn, row, now_ms, [subscriber.id]) > 0


# ------------------------------------------------------------------------------- status, withdrawal


@dataclass(frozen=True)
class NotificationStatus:
    notification_id: str
    type: str
    title: str
    created_at: int
    withdrawn_at: int | None
    counts: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        counts = dict(self.counts)
        counts[QUEUED] += counts.pop(PROCESSING)  # in flight is still queued for the dapp
        return {
            "notification_id": self.notification_id, "type": self.type, "title": self.title,
            "created_at": self.created_at, "withdrawn_at": self.withdrawn_at, "total": sum(counts.values()),
            **counts,
        }


async def notification_status(
    conn: AsyncConnection, project: Project, notification_id: str
) -> NotificationStatus | None:
    row = (
        await conn.execute(
            select(notifications).where(
                notifications.c.project == project.id, notifications.c.notification_id == notification_id
            )
        )
    ).first()
    if row is None:
        return None
    sn = subscriber_notifications
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in await conn.execute(
        select(sn.c.status, func.count()).where(sn.c.notification == row.id).group_by(sn.c.status)
    ):
        counts[status] = int(count)
    add_part_counts(counts, (await broadcasts.part_counts(conn, [row.id])).get(row.id))
    return NotificationStatus(
        row.notification_id, row.type, row.title, int(row.created_at),
        int(row.withdrawn_at) if row.withdrawn_at is not None else None, counts,
    )


async def withdraw(conn: AsyncConnection, project: Project, notification_id: str, now_ms: int) -> int | None:
    """Withdraw the deliveries still queued (not those a worker is publishing, nor published ones): how
    many, or None when the project has no such notification. Withdrawn rows leave the wallets' history."""
    row_id = (
        await conn.execute(
            select(notifications.c.id).where(
                notifications.c.project == project.id, notifications.c.notification_id == notification_id
            )
        )
    ).scalar_one_or_none()
    if row_id is None:
        return None
    await conn.execute(update(notifications).where(notifications.c.id == row_id).values(withdrawn_at=now_ms))
    from_parts = await broadcasts.close_parts(conn, broadcasts.parts_of(row_id), broadcasts.WITHDRAWN)
    sn = subscriber_notifications
    result = await conn.execute(
        update(sn).where(sn.c.notification == row_id, sn.c.status == QUEUED).values(status=WITHDRAWN, updated_at=now_ms)
    )
    return from_parts + int(result.rowcount or 0)


def add_part_counts(counts: dict[str, int], parts: broadcasts.PartCounts | None) -> None:
    """Add what a broadcast's parts count (recipients not yet published) to a notification's row counts."""
    if parts is not None:
        counts[QUEUED] += parts.queued
        counts[WITHDRAWN] += parts.withdrawn
        counts[FAILED] += parts.failed
