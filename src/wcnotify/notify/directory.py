"""Queries behind the dapp-facing directory endpoints: who is subscribed, which apps are listed, project
settings and the welcome notification's settings.

Kept apart from :mod:`wcnotify.notify.store` (the wallet protocol's queries) so the two evolve separately;
the same conventions hold: one async function per question or change, each taking the caller's connection.

Paging is keyset paging on a unique, indexed column, never OFFSET: ``subscribers`` on ``address`` (the
``(project, address)`` unique index) and apps on ``app_domain`` (unique). A page costs the same wherever it
is, and a subscriber that exists for the whole walk is returned exactly once even while others come and go.
Cursors are opaque to clients (base64url of a kind tag and the last key) so the order can change later
without breaking them, and a cursor from one endpoint is refused by another instead of silently skipping.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcnotify.notify.store import NotificationType, Project, project_by_id
from wcnotify.storage.tables import notification_types, projects, subscriber_scopes, subscribers

PAGE_DEFAULT = 100  # GET /v1/{projectId}/subscribers
PAGE_MAX = 1000
APPS_PAGE_DEFAULT = 50  # GET /v1/apps: each app carries its did document and types, so pages are smaller
APPS_PAGE_MAX = 100
SEARCH_MAX = 100  # characters of ?q=

CURSOR_SUBSCRIBERS = "s"
CURSOR_APPS = "a"


class CursorError(ValueError):
    """A cursor this API did not hand out (or handed out by another endpoint)."""


def encode_cursor(kind: str, key: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> str:
    """The key inside ``cursor``; :class:`CursorError` unless it is a ``kind`` cursor."""
    if len(cursor) > 512:
        raise CursorError("too long")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        raise CursorError("not base64url") from None
    tag, sep, key = text.partition(":")
    if tag != kind or not sep or not key or "\x00" in key:
        raise CursorError("not a cursor of this endpoint")
    return key


# -------------------------------------------------------------------------------------- subscribers


@dataclass(frozen=True)
class SubscriberEntry:
    account: str  # as stored: the account the wallet first subscribed with
    address: str  # the chain-agnostic key
    notification_types: tuple[str, ...]
    created_at: int  # Unix milliseconds

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "notification_types": list(self.notification_types),
                "created_at": self.created_at}


async def _scopes(conn: AsyncConnection, subscriber_ids: Sequence[str]) -> dict[str, list[str]]:
    """The scopes of many subscribers in one query (a page is at most PAGE_MAX ids)."""
    out: dict[str, list[str]] = {sid: [] for sid in subscriber_ids}
    if not subscriber_ids:
        return out
    rows = await conn.execute(
        select(subscriber_scopes.c.subscriber, subscriber_scopes.c.type_id)
        .where(subscriber_scopes.c.subscriber.in_(list(subscriber_ids)))
    )
    for r in rows:
        out[r.subscriber].append(r.type_id)
    return out


async def _entries(conn: AsyncConnection, rows: Sequence[Any]) -> list[SubscriberEntry]:
    scopes = await _scopes(conn, [r.id for r in rows])
    return [SubscriberEntry(r.account, r.address, tuple(sorted(scopes[r.id])), int(r.created_at)) for r in rows]


async def subscribers_at(conn: AsyncConnection, project: Project, addresses: Iterable[str]) -> list[SubscriberEntry]:
    """The project's subscribers among chain-agnostic ``addresses`` (see ``store.address_of``)."""
    wanted = sorted(set(addresses))
    if not wanted:
        return []
    rows = (
        await conn.execute(
            select(subscribers.c.id, subscribers.c.account, subscribers.c.address, subscribers.c.created_at)
            .where(subscribers.c.project == project.id, subscribers.c.address.in_(wanted))
            .order_by(subscribers.c.address)
        )
    ).all()
    return await _entries(conn, rows)


async def subscribers_page(
    conn: AsyncConnection, project: Project, *, after: str | None, limit: int
) -> tuple[list[SubscriberEntry], str | None]:
    """One page of the project's subscribers in address order, and the address to continue after (None at
    the end). One row more than asked is read, so the last page says it is the last without another call."""
    query = (
        select(subscribers.c.id, subscribers.c.account, subscribers.c.address, subscribers.c.created_at)
        .where(subscribers.c.project == project.id)
        .order_by(subscribers.c.address)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(subscribers.c.address > after)
    rows = (await conn.execute(query)).all()
    page = await _entries(conn, rows[:limit])
    return page, (page[-1].address if len(rows) > limit else None)


async def subscriber_accounts_page(
    conn: AsyncConnection, project: Project, *, after: str | None, limit: int
) -> list[tuple[str, str]]:
    """``(address, stored account)`` pairs in address order, for the v0 list (which has no scopes)."""
    query = (
        select(subscribers.c.address, subscribers.c.account)
        .where(subscribers.c.project == project.id)
        .order_by(subscribers.c.address)
        .limit(limit)
    )
    if after is not None:
        query = query.where(subscribers.c.address > after)
    return [(r.address, r.account) for r in await conn.execute(query)]


# --------------------------------------------------------------------------------------- registry


def _listed() -> Any:
    """Apps a wallet can subscribe to: chose to be listed and have a domain (and so their keys)."""
    return (projects.c.listed.is_(True)) & projects.c.app_domain.is_not(None) & projects.c.topic.is_not(None)


async def listed_apps(
    conn: AsyncConnection, *, search: str | None, after: str | None, limit: int
) -> tuple[list[Project], str | None]:
    """One page of listed apps in app-domain order, and the domain to continue after (None at the end).

    ``search`` matches the name or the domain as a substring, ignoring case (ASCII case on SQLite, whose
    ``lower()`` knows only ASCII); ``%`` and ``_`` in it are literal characters, not patterns.
    """
    query = select(projects).where(_listed()).order_by(projects.c.app_domain).limit(limit + 1)
    if search:
        needle = search.lower()
        query = query.where(
            or_(
                func.lower(projects.c.name).contains(needle, autoescape=True),
                projects.c.app_domain.contains(needle, autoescape=True),  # stored lowercase
            )
        )
    if after is not None:
        query = query.where(projects.c.app_domain > after)
    rows = (await conn.execute(query)).all()
    page = [Project.of(r) for r in rows[:limit]]
    return page, (page[-1].app_domain if len(rows) > limit else None)


async def listed_app(conn: AsyncConnection, domain: str) -> Project | None:
    row = (await conn.execute(select(projects).where(_listed(), projects.c.app_domain == domain.lower()))).first()
    return Project.of(row) if row else None


async def types_of(conn: AsyncConnection, project_ids: Sequence[str]) -> dict[str, list[NotificationType]]:
    """The notification types of many projects in one query, each list in creation order."""
    out: dict[str, list[NotificationType]] = {pid: [] for pid in project_ids}
    if not project_ids:
        return out
    rows = await conn.execute(
        select(notification_types)
        .where(notification_types.c.project.in_(list(project_ids)))
        .order_by(notification_types.c.created_at, notification_types.c.id)
    )
    for r in rows:
        out[r.project].append(NotificationType(r.id, r.name, r.description, orjson.loads(r.image_urls)))
    return out


# ------------------------------------------------------------------------------- project settings


async def update_project(
    conn: AsyncConnection, project: Project, *, name: str | None = None, description: str | None = None,
    icons: Sequence[str] | None = None, listed: bool | None = None,
) -> Project:
    """Change the given settings (None leaves one as it is) and return the project as stored now."""
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name
    if description is not None:
        values["description"] = description
    if icons is not None:
        values["icons"] = orjson.dumps(list(icons)).decode()
    if listed is not None:
        values["listed"] = listed
    if values:
        await conn.execute(update(projects).where(projects.c.id == project.id).values(values))
    updated = await project_by_id(conn, project.id)
    assert updated is not None
    return updated


# ------------------------------------------------------------------------------------------ welcome


async def get_welcome(conn: AsyncConnection, project: Project) -> dict[str, Any] | None:
    """The welcome notification's settings ``{enabled, type, title, body, url}``, or None when never set.

    Read this when a wallet first subscribes: send only when ``enabled``. The settings were valid when
    stored, but ``type`` may name a notification type deleted since, so check it still exists before
    sending.
    """
    value = (await conn.execute(select(projects.c.welcome).where(projects.c.id == project.id))).scalar_one_or_none()
    if not value:
        return None
    welcome: dict[str, Any] = orjson.loads(value)
    return welcome


async def set_welcome(conn: AsyncConnection, project: Project, welcome: dict[str, Any]) -> None:
    """Store already validated settings (the API validates; see ``api/registry.py``)."""
    await conn.execute(
        update(projects).where(projects.c.id == project.id).values(welcome=orjson.dumps(welcome).decode())
    )
