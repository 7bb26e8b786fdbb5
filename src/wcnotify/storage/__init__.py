"""Storage shared by the services: one async SQLAlchemy engine factory and the Alembic migrations.

SQLite (``aiosqlite``) is the embedded default; PostgreSQL (``asyncpg``) is the scale-out choice. The same
SQLAlchemy Core statements serve both, and every storage-backed test runs on both.
"""

from wcnotify.storage.engine import async_url, create_engine, migrate, open_database, reading

__all__ = ["async_url", "create_engine", "migrate", "open_database", "reading"]
