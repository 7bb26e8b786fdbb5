"""The watch store in SQL, in the mailbox's database (tables in ``sql_mailbox.py``, rules in ``watch_store.py``).

Events are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several nodes sharing the database
each take different rows; SQLite has one writer (``BEGIN IMMEDIATE``) and needs no row locks. A delivered
event keeps its row (``done``) until ``keep_until`` so that a late duplicate from another node is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from wcnotify import spec
from wcnotify.relay.sql_mailbox import http_subscriptions, watch_events, watches
from wcnotify.relay.watch_store import Watch, WatchEvent
from wcnotify.spec import WatchType
from wcnotify.storage.engine import reading


class SqlWatchStore:
    """:class:`~wcnotify.relay.watch_store.WatchStore` over the relay's SQL engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert: Any = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    async def load(self, now: float) -> tuple[list[Watch], list[tuple[str, str]]]:
        async with reading(self.engine) as conn:
            rows = await conn.execute(select(watches.c.body).where(watches.c.expires_at > now))
            found = [Watch.from_json(r.body) for r in rows]
            subs = await conn.execute(
                select(http_subscriptions.c.topic, http_subscriptions.c.client).where(
                    http_subscriptions.c.expires_at > now
                )
            )
            return found, [(r.topic, r.client) for r in subs]

    async def watches_of(self, client: str, now: float) -> list[Watch]:
        async with reading(self.engine) as conn:
            rows = await conn.execute(
                select(watches.c.body).where(watches.c.client == client, watches.c.expires_at > now)
            )
            return [Watch.from_json(r.body) for r in rows]

    async def put_watch(self, watch: Watch) -> None:
        values = {
            "client": watch.client, "typ": watch.typ.value, "whu": watch.whu, "body": watch.to_json().decode(),
            "expires_at": float(watch.expires_at),
        }
        stmt = self._insert(watches).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[watches.c.client, watches.c.typ, watches.c.whu],
            set_={"body": stmt.excluded.body, "expires_at": stmt.excluded.expires_at},
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def delete_watch(self, client: str, typ: WatchType, whu: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(watches).where(watches.c.client == client, watches.c.typ == typ.value, watches.c.whu == whu)
            )

    async def add_subscriptions(self, client: str, topics: Sequence[str], expires_at: float) -> None:
        if not topics:
            return
        stmt = self._insert(http_subscriptions).values(
            [{"topic": t, "client": client, "expires_at": expires_at} for t in dict.fromkeys(topics)]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[http_subscriptions.c.topic, http_subscriptions.c.client],
            set_={"expires_at": stmt.excluded.expires_at},
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def remove_subscriptions(self, client: str, topics: Sequence[str]) -> None:
        if not topics:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(http_subscriptions).where(
                    http_subscriptions.c.client == client, http_subscriptions.c.topic.in_(list(topics))
                )
            )

    async def enqueue(self, events: Sequence[WatchEvent], now: float) -> None:
        if not events:
            return
        keep = now + spec.RELAY_WATCH_DEDUPE_WINDOW
        rows = [
            {
                "id": e.id, "whu": e.whu, "jwt": e.jwt, "due": e.due, "give_up_at": e.give_up_at,
                "attempts": e.attempts, "done": False, "keep_until": max(keep, e.give_up_at),
            }
            for e in {e.id: e for e in events}.values()
        ]
        async with self.engine.begin() as conn:
            await conn.execute(self._insert(watch_events).values(rows).on_conflict_do_nothing())

    async def claim(self, now: float, limit: int, lease: float) -> tuple[list[WatchEvent], float | None]:
        query = (
            select(watch_events)
            .where(watch_events.c.done.is_(False), watch_events.c.due <= now)
            .order_by(watch_events.c.due)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.engine.begin() as conn:
            rows = (await conn.execute(query)).all()
            if rows:
                await conn.execute(
                    update(watch_events).where(watch_events.c.id.in_([r.id for r in rows])).values(due=now + lease)
                )
            next_due = (
                await conn.execute(select(func.min(watch_events.c.due)).where(watch_events.c.done.is_(False)))
            ).scalar()
        events = [WatchEvent(now + lease, r.id, r.whu, r.jwt, r.give_up_at, r.attempts) for r in rows]
        return events, (float(next_due) if next_due is not None else None)

    async def finish(self, event: WatchEvent, now: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(watch_events).where(watch_events.c.id == event.id).values(done=True))

    async def retry(self, event: WatchEvent) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(watch_events)
                .where(watch_events.c.id == event.id)
                .values(due=event.due, attempts=event.attempts)
            )

    async def purge(self, now: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(watches).where(watches.c.expires_at <= now))
            await conn.execute(delete(http_subscriptions).where(http_subscriptions.c.expires_at <= now))
            await conn.execute(
                delete(watch_events).where(
                    watch_events.c.keep_until <= now,
                    or_(watch_events.c.done.is_(True), watch_events.c.give_up_at <= now),
                )
            )
