"""The console's own read-only queries: what a dashboard needs and the dapp API does not offer.

Same conventions as :mod:`wcnotify.notify.store`: one async function per question, each taking the caller's
connection, one code path for SQLite and PostgreSQL. Every answer is bounded (a ``limit`` or a number of time
buckets chosen by the caller within the API's maximum), so a large project costs a page, not a table scan
returned whole.

What the tables can tell, and what they cannot:

* ``subscribers.created_at`` is when the row was inserted: the account's first subscribe to the project
  (a renewal or an update keeps it). An unsubscribe **deletes** the row, and nothing else keeps it (webhook
  events do, but only for projects with a webhook, and delivered ones are purged after a day). So the
  history here is "today's subscribers, counted by when they subscribed": an account that left is missing
  from every past bucket too, and an account that left and came back counts from its latest subscribe.
* ``subscriber_notifications`` holds one row per (notification, subscriber) with its delivery status, so a
  notification's counts are exact; ``processing`` (a worker holds it) is reported as ``queued``, and so are a
  broadcast's recipients not published yet, counted from its parts (``broadcast_parts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wcnotify.notify import broadcasts
from wcnotify.notify.sending import STATUSES, NotificationStatus, add_part_counts
from wcnotify.notify.store import Project
from wcnotify.storage.tables import dapp_webhooks, notifications, subscriber_notifications, subscribers, webhook_events

BUCKET_MS: dict[str, int] = {"day": 86_400_000, "hour": 3_600_000}


# ------------------------------------------------------------------------------------ notifications


async def recent_notifications(conn: AsyncConnection, project: Project, *, limit: int) -> list[NotificationStatus]:
    """The project's ``limit`` newest notifications, each with its delivery counts by status.

    Two queries whatever the limit: the notifications, then one grouped count over their delivery rows
    (the ``(notification, subscriber)`` unique index serves it).
    """
    rows = (
        await conn.execute(
            select(notifications)
            .where(notifications.c.project == project.id)
            .order_by(notifications.c.created_at.desc(), notifications.c.id.desc())
            .limit(limit)
        )
    ).all()
    counts: dict[str, dict[str, int]] = {r.id: dict.fromkeys(STATUSES, 0) for r in rows}
    if rows:
        sn = subscriber_notifications
        grouped = await conn.execute(
            select(sn.c.notification, sn.c.status, func.count())
            .where(sn.c.notification.in_(list(counts)))
            .group_by(sn.c.notification, sn.c.status)
        )
        for notification, status, count in grouped:
            if status in counts[notification]:
                counts[notification][status] = int(count)
        for notification, parts in (await broadcasts.part_counts(conn, list(counts))).items():
            add_part_counts(counts[notification], parts)
    return [
        NotificationStatus(
            r.notification_id, r.type, r.title, int(r.created_at),
            int(r.withdrawn_at) if r.withdrawn_at is not None else None, counts[r.id],
        )
        for r in rows
    ]


# ------------------------------------------------------------------------------------- subscribers


@dataclass(frozen=True)
class SubscriberHistory:
    """Subscribers of today by the bucket of their ``created_at`` (UTC), oldest bucket first."""

    bucket: str  # "day" | "hour"
    starts: list[int]  # each bucket's start, Unix ms
    new: list[int]  # subscribers (still subscribed) whose subscription started in the bucket
    total: list[int]  # subscribers (still subscribed) whose subscription started by the bucket's end
    current: int  # subscribers now

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket, "current": self.current,
            "points": [{"start": s, "new": n, "total": t} for s, n, t in zip(self.starts, self.new, self.total,
                                                                            strict=True)],
            "counts": "current subscribers by the time they subscribed; unsubscribed accounts are not kept, "
                      "so they are missing from past buckets too",
        }


async def subscriber_history(
    conn: AsyncConnection, project: Project, *, bucket: str, buckets: int, now_ms: int
) -> SubscriberHistory:
    """The last ``buckets`` buckets up to the one holding ``now_ms``: three queries (the count before the
    window, a grouped count inside it, the count now), whatever the number of subscribers."""
    size = BUCKET_MS[bucket]
    first = (now_ms // size - (buckets - 1)) * size
    end = first + buckets * size
    mine = subscribers.c.project == project.id
    before = (
        await conn.execute(select(func.count()).select_from(subscribers).where(mine, subscribers.c.created_at < first))
    ).scalar_one()
    index = ((subscribers.c.created_at - first) // size).label("bucket_index")
    new = [0] * buckets
    for position, count in await conn.execute(
        select(index, func.count())
        .where(mine, subscribers.c.created_at >= first, subscribers.c.created_at < end)
        .group_by(index)
    ):
        new[int(position)] = int(count)
    current = (await conn.execute(select(func.count()).select_from(subscribers).where(mine))).scalar_one()
    total, running = [], int(before)
    for count in new:
        running += count
        total.append(running)
    return SubscriberHistory(bucket, [first + i * size for i in range(buckets)], new, total, int(current))


# -------------------------------------------------------------------------------- webhook outbox


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    webhook: str
    event: str
    account: str
    created_at: int
    delivered_at: int | None
    state: str  # delivered | pending | retrying (its webhook's last attempt failed; it waits for the retry)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "webhook": self.webhook, "event": self.event, "account": self.account,
                "created_at": self.created_at, "delivered_at": self.delivered_at, "state": self.state}


async def webhook_outbox(conn: AsyncConnection, project: Project, *, limit: int) -> list[OutboxEvent]:
    """The newest ``limit`` outbox rows of the project's webhooks (pending ones, and delivered ones until
    they are purged a day later); events dropped after three days of failures are gone and only counted in
    the webhook's ``failed``."""
    we = webhook_events
    rows = await conn.execute(
        select(we.c.id, we.c.webhook, we.c.event, we.c.account, we.c.created_at, we.c.delivered_at,
               dapp_webhooks.c.attempts)
        .join(dapp_webhooks, dapp_webhooks.c.id == we.c.webhook)
        .where(dapp_webhooks.c.project == project.id)
        .order_by(we.c.id.desc())
        .limit(limit)
    )
    out = []
    for r in rows:
        pending = "retrying" if int(r.attempts) > 0 else "pending"
        state = "delivered" if r.delivered_at is not None else pending
        out.append(OutboxEvent(int(r.id), r.webhook, r.event, r.account, int(r.created_at),
                               int(r.delivered_at) if r.delivered_at is not None else None, state))
    return out
