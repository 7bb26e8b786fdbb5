"""Engine set-up: URL translation, SQLite pragmas, PostgreSQL schema selection, migrations on start.

Why a custom ``search_path`` URL parameter: tests (and operators sharing one database between several
deployments) give each instance its own PostgreSQL schema. asyncpg has no ``options`` parameter, so
``postgresql://host/db?search_path=s`` is stripped here and passed as a server setting instead.

Migrations run on every start, as the reference does, inside a transaction that holds a PostgreSQL advisory
lock, so several replicas starting together apply each migration once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

_MIGRATIONS = Path(__file__).parent / "migrations"

# aiosqlite logs every statement with its parameters (project secrets, webhook secrets, private keys) at
# DEBUG: a root logger at DEBUG would write them out. Keep it at INFO unless configured, as SQLAlchemy does
# for its own loggers (tests/integration/test_attack_matrix.py::test_no_secret_reaches_a_log_record_at_debug).
if logging.getLogger("aiosqlite").level == logging.NOTSET:
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
)
# how long a first connection waits for a concurrent opener of the same new SQLite file (see migrate)
_SQLITE_OPEN_RETRY_S = 30.0
# any constant fits; it only has to be the same for every process that migrates this database
_MIGRATION_LOCK_ID = 0x77636E6F74696679 % 2**63  # "wcnotify"
_READ_ONLY = "wcnotify_read_only"  # execution option of a reading() connection (SQLite: a deferred BEGIN)
# the PostgreSQL schema each engine was opened on (needed to create it before migrating)
_SCHEMAS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def async_url(url: str) -> str:
    """``sqlite:///x`` -> ``sqlite+aiosqlite:///x``; ``postgresql://`` -> ``postgresql+asyncpg://``."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def _split_search_path(url: str) -> tuple[str, str | None]:
    if not url.startswith("postgresql"):
        return url, None
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "search_path"), None)
    rest = urlencode([(k, v) for k, v in query if k != "search_path"])
    return urlunsplit(parts._replace(query=rest)), schema


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite:///path``, ``sqlite://`` in memory, ``postgresql://…``)."""
    url, schema = _split_search_path(async_url(url))
    connect_args: dict[str, Any] = kwargs.pop("connect_args", {})
    if url.startswith("postgresql+asyncpg") and schema:
        connect_args.setdefault("server_settings", {})["search_path"] = schema
    if url.startswith("sqlite+aiosqlite"):
        connect_args.setdefault("timeout", 30)
    engine = create_async_engine(url, connect_args=connect_args, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # let SQLAlchemy, not the sqlite3 module, decide where transactions begin (below)
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                for pragma in _SQLITE_PRAGMAS:
                    cursor.execute(pragma)
            finally:
                cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock up front: a read-then-write transaction then waits its turn
            # (busy_timeout) instead of failing with SQLITE_BUSY when two writers try to upgrade together.
            # A connection from reading() only reads: in WAL mode it needs no lock and reads a snapshot
            if conn.get_execution_options().get(_READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    elif engine.dialect.name == "postgresql" and schema:
        _SCHEMAS[engine.sync_engine] = schema
    return engine


@contextlib.asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for queries that only read. On SQLite its transaction is a plain (deferred) ``BEGIN``:
    every transaction used to begin ``IMMEDIATE``, so a read took SQLite's one write lock, waited behind every
    writer in the busy handler (sleeps growing to 100 ms) and held writers up in turn; in WAL mode a reader
    needs no lock and sees one snapshot. A write on such a connection is a bug (it may fail with
    SQLITE_BUSY); writers use ``engine.begin()``."""
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execution_options(**{_READ_ONLY: True})
        yield conn


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(schema: str | None, connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        if schema:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    command.upgrade(_alembic_config(connection), "head")


async def migrate(engine: AsyncEngine) -> None:
    """Apply every Alembic migration the database lacks (idempotent, safe with concurrent starters).

    On SQLite the first connection to a new file switches it to WAL, which needs an exclusive lock that
    SQLite refuses at once (``database is locked``, without consulting busy_timeout) while another process
    is doing the same. That only happens on the very first opening, so it is retried here with a back-off;
    once the file is in WAL mode the pragma is a no-op that takes no lock.
    """
    upgrade = functools.partial(_upgrade, _SCHEMAS.get(engine.sync_engine))
    deadline = time.monotonic() + _SQLITE_OPEN_RETRY_S
    delay = 0.01
    while True:
        try:
            async with engine.begin() as conn:
                await conn.run_sync(upgrade)
            return
        except OperationalError as exc:
            locked = engine.dialect.name == "sqlite" and "database is locked" in str(exc.orig)
            if not locked or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


async def open_database(url: str, **kwargs: Any) -> AsyncEngine:
    """Create the engine and bring the schema up to date: what every service does on start."""
    engine = create_engine(url, **kwargs)
    try:
        await migrate(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine
