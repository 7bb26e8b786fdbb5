"""The notify server's queries: one async function per question or change, each taking a connection.

Callers open the connection (``db.read()`` / ``db.write()``) so that a handler's writes share one
transaction: a wallet request changes everything it changes, or nothing. Network calls (keys server,
relay) never happen while a write transaction is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wcnotify.protocol.crypto import Ed25519KeyPair, X25519KeyPair, topic_of
from wcnotify.protocol.did import Account, did_web, encode_did_key
from wcnotify.storage.engine import reading
from wcnotify.storage.tables import (
    handled_messages,
    notification_types,
    notifications,
    projects,
    subscriber_notifications,
    subscriber_scopes,
    subscribers,
    watchers,
)


def new_id() -> str:
    return str(uuid.uuid4())


def address_of(account: Account) -> str:
    """The chain-agnostic key of an account: namespace plus address (lowercase for eip155)."""
    return f"{account.namespace}:{account.address_key}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    """A project API secret: 256 random bits, hex (what project creation and rotation hand out)."""
    return secrets.token_hex(32)


_NO_HASH = "0" * 64  # compared against when a project has no previous secret, so every check costs the same


class DomainTakenError(Exception):
    """Another project already holds this app domain."""


# ------------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class Project:
    id: str
    project_id: str
    name: str
    description: str
    icons: list[str]
    app_domain: str | None
    topic: str | None
    subscribe_private: str | None
    subscribe_public: str | None
    authentication_private: str | None
    authentication_public: str | None
    listed: bool = False  # in the public app registry (GET /v1/apps) once it has an app domain

    @classmethod
    def of(cls, row: Row[Any]) -> Project:
        m = row._mapping
        return cls(
            m["id"], m["project_id"], m["name"], m["description"], orjson.loads(m["icons"]), m["app_domain"],
            m["topic"], m["subscribe_private"], m["subscribe_public"], m["authentication_private"],
            m["authentication_public"], bool(m["listed"]),
        )

    @property
    def has_keys(self) -> bool:
        return self.app_domain is not None and self.authentication_private is not None

    @property
    def authentication_key(self) -> Ed25519KeyPair:
        assert self.authentication_private is not None
        return Ed25519KeyPair.from_seed(bytes.fromhex(self.authentication_private))

    @property
    def authentication_did(self) -> str:
        assert self.authentication_public is not None
        return encode_did_key(bytes.fromhex(self.authentication_public))

    @property
    def subscribe_key(self) -> X25519KeyPair:
        assert self.subscribe_private is not None
        return X25519KeyPair.from_private(bytes.fromhex(self.subscribe_private))

    @property
    def did_web(self) -> str:
        assert self.app_domain is not None
        return did_web(self.app_domain)


@dataclass(frozen=True)
class Subscriber:
    id: str
    project: str
    account: str
    address: str
    sym_key: str
    topic: str
    expiry: int
    scope: tuple[str, ...] = ()


@dataclass(frozen=True)
class Watcher:
    id: str
    account: str
    address: str
    project: str | None
    did_key: str
    sym_key: str
    expiry: int


# ------------------------------------------------------------------------------------------ database


class Database:
    """The engine, with the two ways to use it.

    On SQLite the writers of this process take turns on an asyncio lock before ``BEGIN IMMEDIATE``. SQLite
    has one writer at a time; without the lock, a connection that finds the write lock taken sleeps in
    SQLite's busy handler, in steps growing to 100 ms, and does not notice when the lock is freed. In the
    fan-out bench the delivery workers' claims and settles then waited up to 1.2 s for one another, with
    the database idle. The lock hands the turn over at once, in arrival order. (Other processes on the same
    file still meet the busy handler; scale-out across processes is PostgreSQL's job.)
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._write_turn: asyncio.Lock | None = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @contextlib.asynccontextmanager
    async def read(self, *, snapshot: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection for reading. ``snapshot``: every statement sees the same committed state (PostgreSQL's
        REPEATABLE READ; a SQLite transaction always does), for an answer made of several queries that a
        concurrent commit must not split, such as a notification's row counts and its broadcast's remainder
        while a worker writes a page."""
        async with reading(self.engine) as conn:
            if snapshot and conn.dialect.name == "postgresql":
                await conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if self._write_turn is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_turn, self.engine.begin() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()


# ------------------------------------------------------------------------------------------ projects


async def create_project(
    conn: AsyncConnection, *, name: str, description: str, icons: Sequence[str], now_ms: int
) -> tuple[Project, str]:
    """A new project and its API secret (returned once; only its hash is stored)."""
    secret = new_secret()
    values = {
        "id": new_id(), "project_id": secrets.token_hex(16), "name": name, "description": description,
        "icons": orjson.dumps(list(icons)).decode(), "secret_hash": hash_secret(secret), "created_at": now_ms,
    }
    await conn.execute(projects.insert().values(values))
    project = await project_by_public_id(conn, values["project_id"])
    assert project is not None
    return project, secret


async def list_projects(conn: AsyncConnection) -> list[Project]:
    rows = await conn.execute(select(projects).order_by(projects.c.created_at, projects.c.id))
    return [Project.of(r) for r in rows]


async def project_by_public_id(conn: AsyncConnection, project_id: str) -> Project | None:
    row = (await conn.execute(select(projects).where(projects.c.project_id == project_id))).first()
    return Project.of(row) if row else None


async def project_by_id(conn: AsyncConnection, id_: str) -> Project | None:
    row = (await conn.execute(select(projects).where(projects.c.id == id_))).first()
    return Project.of(row) if row else None


@dataclass(frozen=True)
class SecretMatch:
    """Which of a project's secrets a presented one is, as :func:`match_secret` found it."""

    project: Project
    current: bool  # False: the previous secret, within its grace period
    secret_hash: str  # the project's current secret hash when it was read (what a rotation replaces)


async def match_secret(conn: AsyncConnection, project_id: str, secret: str, *, now_ms: int) -> SecretMatch | None:
    """Whether ``secret`` is the project's current API secret or, until ``previous_secret_expires_at``, the one a
    rotation replaced; None when it is neither (or the project does not exist). Both hashes are compared in
    constant time, every time."""
    row = (await conn.execute(select(projects).where(projects.c.project_id == project_id))).first()
    if row is None:
        return None
    m = row._mapping
    presented = hash_secret(secret)
    current = hmac.compare_digest(m["secret_hash"], presented)
    expires = m["previous_secret_expires_at"]
    in_grace = m["previous_secret_hash"] is not None and expires is not None and now_ms < int(expires)
    previous = hmac.compare_digest(m["previous_secret_hash"] if in_grace else _NO_HASH, presented) and in_grace
    if not (current or previous):
        return None
    return SecretMatch(Project.of(row), current, m["secret_hash"])


async def authenticate_project(conn: AsyncConnection, project_id: str, secret: str, *, now_ms: int) -> Project | None:
    """The project when ``secret`` is its API secret, or its previous one still in its grace period (see
    :func:`match_secret`), else None."""
    found = await match_secret(conn, project_id, secret, now_ms=now_ms)
    return found.project if found else None


async def current_secret_hash(conn: AsyncConnection, project: Project) -> str | None:
    row = (await conn.execute(select(projects.c.secret_hash).where(projects.c.id == project.id))).first()
    return row.secret_hash if row else None


async def rotate_secret(
    conn: AsyncConnection, project: Project, *, expected_hash: str, grace_ms: int, now_ms: int
) -> tuple[str, int | None] | None:
    """Give the project a new API secret, in one UPDATE: the new secret and when the replaced one stops
    working (None: at once), or None when the current secret is no longer ``expected_hash`` (another rotation
    got there first; nothing changed).

    The UPDATE is a compare-and-set on ``secret_hash``, so of rotations that started from the same secret
    exactly one succeeds, on SQLite (writers are serialised) and PostgreSQL (the loser's UPDATE waits for the
    winner's row lock, then finds the hash changed). Only the new secret's hash is stored. A grace period
    keeps the replaced secret as the previous one until ``now_ms + grace_ms``; any older previous secret stops
    at once, as does the replaced one when ``grace_ms`` is 0.
    """
    secret = new_secret()
    expires_at = now_ms + grace_ms if grace_ms > 0 else None
    result = await conn.execute(
        update(projects)
        .where(projects.c.id == project.id, projects.c.secret_hash == expected_hash)
        .values(
            secret_hash=hash_secret(secret),
            previous_secret_hash=expected_hash if expires_at is not None else None,
            previous_secret_expires_at=expires_at,
        )
    )
    if result.rowcount != 1:
        return None
    return secret, expires_at


async def project_by_topic(conn: AsyncConnection, topic: str) -> Project | None:
    row = (await conn.execute(select(projects).where(projects.c.topic == topic))).first()
    return Project.of(row) if row else None


async def project_by_domain(conn: AsyncConnection, domain: str) -> Project | None:
    row = (await conn.execute(select(projects).where(projects.c.app_domain == domain.lower()))).first()
    return Project.of(row) if row else None


async def set_app_domain(conn: AsyncConnection, project: Project, domain: str) -> Project:
    """Give the project its domain, creating its key pairs the first time (later calls keep them)."""
    domain = domain.lower()
    holder = await project_by_domain(conn, domain)
    if holder is not None and holder.id != project.id:
        raise DomainTakenError(domain)
    values: dict[str, Any] = {"app_domain": domain}
    if project.subscribe_private is None:
        subscribe = X25519KeyPair.generate()
        authentication = Ed25519KeyPair.generate()
        values |= {
            "subscribe_private": subscribe.private_key.hex(), "subscribe_public": subscribe.public_key.hex(),
            "authentication_private": authentication.seed.hex(),
            "authentication_public": authentication.public_key.hex(), "topic": topic_of(subscribe.public_key),
        }
    try:
        await conn.execute(update(projects).where(projects.c.id == project.id).values(values))
    except IntegrityError as exc:  # a concurrent claim of the same domain
        raise DomainTakenError(domain) from exc
    updated = await project_by_public_id(conn, project.project_id)
    assert updated is not None
    return updated


async def project_topics(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(select(projects.c.topic).where(projects.c.topic.is_not(None)))
    return [r.topic for r in rows]


# ------------------------------------------------------------------------------- notification types


@dataclass(frozen=True)
class NotificationType:
    id: str
    name: str
    description: str
    image_urls: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description, "imageUrls": self.image_urls}


async def add_type(
    conn: AsyncConnection, project: Project, *, name: str, description: str, image_urls: dict[str, str], now_ms: int
) -> NotificationType | None:
    """A new type, or None when the project already has one of that name."""
    type_id = new_id()
    try:
        async with conn.begin_nested():
            await conn.execute(
                notification_types.insert().values(
                    id=type_id, project=project.id, name=name, description=description,
                    image_urls=orjson.dumps(image_urls).decode(), created_at=now_ms,
                )
            )
    except IntegrityError:
        return None
    return NotificationType(type_id, name, description, image_urls)


async def list_types(conn: AsyncConnection, project: Project) -> list[NotificationType]:
    rows = await conn.execute(
        select(notification_types)
        .where(notification_types.c.project == project.id)
        .order_by(notification_types.c.created_at, notification_types.c.id)
    )
    return [NotificationType(r.id, r.name, r.description, orjson.loads(r.image_urls)) for r in rows]


async def delete_type(conn: AsyncConnection, project: Project, type_id: str) -> bool:
    result = await conn.execute(
        delete(notification_types).where(notification_types.c.project == project.id, notification_types.c.id == type_id)
    )
    return bool(result.rowcount)


# ------------------------------------------------------------------------------------- subscribers


def _subscriber(row: Row[Any], scope: Iterable[str] = ()) -> Subscriber:
    m = row._mapping
    return Subscriber(
        m["id"], m["project"], m["account"], m["address"], m["sym_key"], m["topic"], m["expiry"], tuple(sorted(scope))
    )


async def _scope(conn: AsyncConnection, subscriber_id: str) -> list[str]:
    query = select(subscriber_scopes.c.type_id).where(subscriber_scopes.c.subscriber == subscriber_id)
    rows = await conn.execute(query)
    return [r.type_id for r in rows]


async def subscriber_by_topic(conn: AsyncConnection, topic: str) -> Subscriber | None:
    row = (await conn.execute(select(subscribers).where(subscribers.c.topic == topic))).first()
    return _subscriber(row, await _scope(conn, row.id)) if row else None


async def find_subscriber(conn: AsyncConnection, project: Project, account: Account) -> Subscriber | None:
    row = (
        await conn.execute(
            select(subscribers).where(subscribers.c.project == project.id, subscribers.c.address == address_of(account))
        )
    ).first()
    return _subscriber(row, await _scope(conn, row.id)) if row else None


async def set_scope(conn: AsyncConnection, subscriber_id: str, scope: Iterable[str]) -> None:
    await conn.execute(delete(subscriber_scopes).where(subscriber_scopes.c.subscriber == subscriber_id))
    rows = [{"subscriber": subscriber_id, "type_id": t} for t in sorted(set(scope))]
    if rows:
        await conn.execute(subscriber_scopes.insert(), rows)


async def insert_subscriber(
    conn: AsyncConnection, project: Project, account: Account, sym_key: bytes, scope: Iterable[str], *,
    expiry: int, now_ms: int,
) -> Subscriber:
    sid = new_id()
    await conn.execute(
        subscribers.insert().values(
            id=sid, project=project.id, account=str(account), address=address_of(account), sym_key=sym_key.hex(),
            topic=topic_of(sym_key), expiry=expiry, created_at=now_ms, updated_at=now_ms,
        )
    )
    await set_scope(conn, sid, scope)
    found = await subscriber_by_topic(conn, topic_of(sym_key))
    assert found is not None
    return found


async def renew_subscriber(
    conn: AsyncConnection, subscriber: Subscriber, scope: Iterable[str], *, expiry: int, now_ms: int
) -> Subscriber:
    """Replace the scope and push the expiry out; the key and topic stay."""
    await conn.execute(
        update(subscribers).where(subscribers.c.id == subscriber.id).values(expiry=expiry, updated_at=now_ms)
    )
    await set_scope(conn, subscriber.id, scope)
    found = await subscriber_by_topic(conn, subscriber.topic)
    assert found is not None
    return found


async def delete_subscriber(conn: AsyncConnection, subscriber: Subscriber) -> None:
    # explicit child deletes: SQLite cascades only with foreign_keys=ON, and this stays correct without it
    await conn.execute(delete(subscriber_notifications).where(subscriber_notifications.c.subscriber == subscriber.id))
    await conn.execute(delete(subscriber_scopes).where(subscriber_scopes.c.subscriber == subscriber.id))
    await conn.execute(delete(subscribers).where(subscribers.c.id == subscriber.id))


async def subscriber_topics(conn: AsyncConnection, after: str = "", limit: int = 1000) -> list[str]:
    """Every subscriber topic, in pages (keyset on the topic) so a large table is never loaded at once."""
    rows = await conn.execute(
        select(subscribers.c.topic).where(subscribers.c.topic > after).order_by(subscribers.c.topic).limit(limit)
    )
    return [r.topic for r in rows]


async def subscriptions_view(
    conn: AsyncConnection, address: str, account: str, *, project_id: str | None = None
) -> list[dict[str, Any]]:
    """``sbs``: the address's subscriptions (one app's when ``project_id``), as ``account`` sees them.

    Each entry is a ``NotifyServerSubscription`` (camelCase) with ``account`` rewritten to the viewer's
    account, as the reference does, so a wallet on another chain sees its own account.
    """
    unread = (
        select(func.count())
        .where(subscriber_notifications.c.subscriber == subscribers.c.id, subscriber_notifications.c.is_read.is_(False))
        .scalar_subquery()
    )
    query = (
        select(subscribers, projects.c.app_domain, projects.c.authentication_public, unread.label("unread"))
        .join(projects, projects.c.id == subscribers.c.project)
        .where(subscribers.c.address == address)
        .order_by(projects.c.app_domain)
    )
    if project_id is not None:
        query = query.where(subscribers.c.project == project_id)
    rows = (await conn.execute(query)).all()
    out = []
    for r in rows:
        out.append(
            {
                "appDomain": r.app_domain,
                "appAuthenticationKey": encode_did_key(bytes.fromhex(r.authentication_public)),
                "symKey": r.sym_key,
                "account": account,
                "scope": sorted(await _scope(conn, r.id)),
                "expiry": int(r.expiry),
                "unreadNotificationCount": int(r.unread),
            }
        )
    return out


# ----------------------------------------------------------------------------------------- watchers


def _watcher(row: Row[Any]) -> Watcher:
    m = row._mapping
    return Watcher(m["id"], m["account"], m["address"], m["project"], m["did_key"], m["sym_key"], m["expiry"])


async def count_other_watchers(conn: AsyncConnection, address: str, did_key: str, now: int) -> int:
    """Unexpired watchers of the address other than ``did_key``, all-apps ones included."""
    result = await conn.execute(
        select(func.count()).where(
            watchers.c.address == address, watchers.c.did_key != did_key, watchers.c.expiry > now
        )
    )
    return int(result.scalar_one())


async def upsert_watcher(
    conn: AsyncConnection, *, account: Account, project: Project | None, did_key: str, sym_key: bytes, expiry: int,
    now_ms: int,
) -> None:
    values = {
        "account": str(account), "address": address_of(account), "project": project.id if project else None,
        "sym_key": sym_key.hex(), "expiry": expiry, "updated_at": now_ms,
    }
    result = await conn.execute(update(watchers).where(watchers.c.did_key == did_key).values(values))
    if not result.rowcount:
        await conn.execute(watchers.insert().values(id=new_id(), did_key=did_key, **values))


async def watchers_of(conn: AsyncConnection, address: str, project: Project, now: int) -> list[Watcher]:
    """Unexpired watchers that see ``project``: its own and the all-apps ones."""
    rows = await conn.execute(
        select(watchers).where(
            watchers.c.address == address,
            watchers.c.expiry > now,
            or_(watchers.c.project.is_(None), watchers.c.project == project.id),
        )
    )
    return [_watcher(r) for r in rows]


async def purge_expired(conn: AsyncConnection, now: int) -> None:
    """Drop expired watchers and handled-message markers."""
    await conn.execute(delete(watchers).where(watchers.c.expiry <= now))
    await conn.execute(delete(handled_messages).where(handled_messages.c.expires_at <= now))


# ------------------------------------------------------------------------------ history, read state


def _nfs_item(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id, "sent_at": int(row.created_at), "type": row.type, "title": row.title, "body": row.body,
        "icon": row.icon, "url": row.url, "is_read": bool(row.is_read),
    }


async def history(
    conn: AsyncConnection, subscriber: Subscriber, *, limit: int, after: str | None, unread_first: bool
) -> tuple[list[dict[str, Any]], bool, bool] | None:
    """One page of the inbox, newest first (unread first when asked): ``(nfs, mre, mur)``.

    Withdrawn notifications are left out. Keyset pagination on ``(is_read, created_at DESC, id DESC)``:
    ``after`` is the last id of the previous page; equal timestamps are ordered by id so no item is skipped
    or repeated. None when ``after`` is not one of this subscriber's notifications.
    """
    sn = subscriber_notifications
    base = (
        select(sn.c.id, sn.c.is_read, sn.c.created_at, notifications.c.type, notifications.c.title,
               notifications.c.body, notifications.c.icon, notifications.c.url)
        .join(notifications, notifications.c.id == sn.c.notification)
        .where(sn.c.subscriber == subscriber.id, sn.c.status != "withdrawn")
    )
    if after is not None:
        anchor = (
            await conn.execute(select(sn.c.is_read, sn.c.created_at, sn.c.id).where(
                sn.c.subscriber == subscriber.id, sn.c.id == after))
        ).first()
        if anchor is None:
            return None
        older = or_(
            sn.c.created_at < anchor.created_at, and_(sn.c.created_at == anchor.created_at, sn.c.id < anchor.id)
        )
        if unread_first:
            # unread (False) sorts before read (True)
            later_group = sn.c.is_read.is_(True) if not anchor.is_read else sn.c.is_read.is_(None)
            base = base.where(or_(and_(sn.c.is_read == anchor.is_read, older), later_group))
        else:
            base = base.where(older)
    order = [sn.c.created_at.desc(), sn.c.id.desc()]
    if unread_first:
        order.insert(0, sn.c.is_read.asc())
    rows = (await conn.execute(base.order_by(*order).limit(limit + 1))).all()
    page = [_nfs_item(r) for r in rows[:limit]]
    more = len(rows) > limit
    more_unread = False
    if more:
        if unread_first:
            more_unread = not rows[limit].is_read
        else:
            last = rows[limit - 1]
            more_unread = bool(
                (
                    await conn.execute(
                        select(func.count()).where(
                            sn.c.subscriber == subscriber.id, sn.c.is_read.is_(False), sn.c.status != "withdrawn",
                            or_(sn.c.created_at < last.created_at,
                                and_(sn.c.created_at == last.created_at, sn.c.id < last.id)),
                        )
                    )
                ).scalar_one()
            )
    return page, more, more_unread


async def mark_read(conn: AsyncConnection, subscriber: Subscriber, ids: Sequence[str] | None) -> int:
    """Mark the subscriber's notifications ``ids`` (all of them when None) as read; how many changed."""
    sn = subscriber_notifications
    query = update(sn).where(sn.c.subscriber == subscriber.id, sn.c.is_read.is_(False))
    if ids is not None:
        query = query.where(sn.c.id.in_(list(ids)))
    result = await conn.execute(query.values(is_read=True))
    return int(result.rowcount or 0)


async def mark_all_read_for_project(conn: AsyncConnection, project: Project) -> int:
    """Every subscriber's notifications of the project (the reference's version of this is a no-op)."""
    sn = subscriber_notifications
    mine = select(subscribers.c.id).where(subscribers.c.project == project.id)
    result = await conn.execute(
        update(sn).where(sn.c.subscriber.in_(mine), sn.c.is_read.is_(False)).values(is_read=True)
    )
    return int(result.rowcount or 0)


# --------------------------------------------------------------------------------- handled messages


@dataclass(frozen=True)
class Handled:
    response: dict[str, Any] | None
    subscribe_topic: str | None


async def handled(conn: AsyncConnection, message_id: str) -> Handled | None:
    row = (await conn.execute(select(handled_messages).where(handled_messages.c.message_id == message_id))).first()
    if row is None:
        return None
    return Handled(orjson.loads(row.response) if row.response else None, row.subscribe_topic)


async def record_handled(
    conn: AsyncConnection, message_id: str, *, expires_at: int, response: dict[str, Any] | None,
    subscribe_topic: str | None,
) -> bool:
    """Claim ``message_id`` inside the caller's transaction; False when another request claimed it first."""
    try:
        async with conn.begin_nested():
            await conn.execute(
                handled_messages.insert().values(
                    message_id=message_id, expires_at=expires_at,
                    response=orjson.dumps(response).decode() if response is not None else None,
                    subscribe_topic=subscribe_topic,
                )
            )
    except IntegrityError:
        return False
    return True
