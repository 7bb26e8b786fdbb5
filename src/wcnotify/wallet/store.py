"""The wallet's local state: one SQLite file per device.

What lives here and why:

* ``keys``: the device's secrets: its relay client key (kept so the relay's per-client acknowledgements
  survive a restart, and a restarted device is not sent its whole mailbox again), one identity key per
  account, one watch key per account (``kY``: the watch topic must stay the same across restarts), and the
  Sync store keys of the accounts that enabled Sync.
* ``subscriptions``: what the notify server (or Sync) last said; rebuilt from ``sbs`` on every watch answer.
* ``notifications``: the local inbox, de-duplicated by ``msg.id`` (the primary key), bounded per subscription
  by ``history_cap`` so a chatty app cannot fill the disk (the reference web client overflowed browser storage).
* ``sync_records``: each Sync store's last-writer-wins state, tombstones included, so an old ``wc_syncSet``
  replayed from the relay's mailbox cannot resurrect something deleted later.

The schema version is ``PRAGMA user_version``; :data:`MIGRATIONS` is applied in order on open. The file is
opened in WAL mode, and every write is one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from wcnotify.protocol.sync import SyncEntry
from wcnotify.wallet.models import Notification, Subscription

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE keys (
        name TEXT PRIMARY KEY,          -- 'relay', 'identity:<account>', 'watch:<account>', 'sync:<account>:<store>'
        secret BLOB NOT NULL,
        info TEXT NOT NULL DEFAULT '{}' -- JSON: what the key is for (registration domain, all_apps, ...)
    );
    CREATE TABLE subscriptions (
        topic TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        app_domain TEXT NOT NULL,
        app_authentication_key TEXT NOT NULL,
        sym_key BLOB NOT NULL,
        scope TEXT NOT NULL,            -- JSON list of type ids
        expiry INTEGER NOT NULL,
        unread_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX subscriptions_account ON subscriptions (account, app_domain);
    CREATE TABLE notifications (
        id TEXT PRIMARY KEY,
        topic TEXT NOT NULL,
        account TEXT NOT NULL,
        app_domain TEXT NOT NULL,
        type TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        icon TEXT NOT NULL,
        url TEXT NOT NULL,
        sent_at INTEGER NOT NULL,
        is_read INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX notifications_topic ON notifications (topic, sent_at);
    CREATE TABLE sync_records (
        account TEXT NOT NULL,
        store TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT,                     -- NULL: deleted (a tombstone)
        rpc_id INTEGER NOT NULL,        -- the JSON-RPC id that wrote it: the higher one wins
        PRIMARY KEY (account, store, key)
    );
    """,
    """
    CREATE TABLE pairings (
        topic TEXT PRIMARY KEY,
        sym_key BLOB NOT NULL,
        expiry INTEGER NOT NULL          -- unix s; 0: none given
    );
    CREATE TABLE proposals (
        key TEXT PRIMARY KEY,            -- the proposal's response topic (its pushProposal store key)
        account TEXT NOT NULL,
        value TEXT NOT NULL              -- protocol.proposal.ProposalRecord.to_json()
    );
    """,
)


class WalletStore:
    """Async access to the wallet file. Open with ``await WalletStore.open(path)``; close with ``close()``."""

    def __init__(self, db: aiosqlite.Connection, history_cap: int) -> None:
        self._db = db
        self.history_cap = history_cap
        self._lock = asyncio.Lock()  # one connection: coroutines must not interleave inside a transaction

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[None]:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    @classmethod
    async def open(cls, path: str | Path, *, history_cap: int) -> WalletStore:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            async with db.execute("PRAGMA user_version") as cur:
                row = await cur.fetchone()
            version = int(row[0]) if row else 0
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                await db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        except BaseException:
            # aiosqlite runs each connection on its own non-daemon thread: left open (a file that is not a
            # database, a failed migration), it would keep the process from ever exiting
            await db.close()
            raise
        return cls(db, history_cap)

    async def close(self) -> None:
        await self._db.close()

    # ---------------------------------------------------------------------------------------- keys

    async def get_key(self, name: str) -> tuple[bytes, dict[str, Any]] | None:
        async with self._db.execute("SELECT secret, info FROM keys WHERE name = ?", (name,)) as cur:
            row = await cur.fetchone()
        return None if row is None else (bytes(row[0]), json.loads(row[1]))

    async def put_key(self, name: str, secret: bytes, info: dict[str, Any] | None = None) -> None:
        async with self._tx():
            await self._db.execute(
                "INSERT INTO keys (name, secret, info) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET secret = excluded.secret, info = excluded.info",
                (name, secret, json.dumps(info or {})),
            )

    async def keys_with_prefix(self, prefix: str) -> list[tuple[str, bytes, dict[str, Any]]]:
        async with self._db.execute(
            "SELECT name, secret, info FROM keys WHERE substr(name, 1, ?) = ? ORDER BY name", (len(prefix), prefix)
        ) as cur:
            return [(r[0], bytes(r[1]), json.loads(r[2])) for r in await cur.fetchall()]

    async def delete_keys(self, names: Iterable[str]) -> None:
        async with self._tx():
            await self._db.executemany("DELETE FROM keys WHERE name = ?", [(n,) for n in names])

    # ------------------------------------------------------------------------------- subscriptions

    async def subscriptions(self, account: str | None = None, *, topic: str | None = None) -> list[Subscription]:
        sql = "SELECT topic, account, app_domain, app_authentication_key, sym_key, scope, expiry, unread_count " \
              "FROM subscriptions"
        args: tuple[Any, ...] = ()
        if account is not None:
            sql += " WHERE account = ?"
            args = (account,)
        elif topic is not None:  # the relay callback looks one up per notification: an index lookup
            sql += " WHERE topic = ?"
            args = (topic,)
        async with self._db.execute(sql + " ORDER BY account, app_domain", args) as cur:
            rows = await cur.fetchall()
        return [
            Subscription(topic=r[0], account=r[1], app_domain=r[2], app_authentication_key=r[3], sym_key=bytes(r[4]),
                         scope=tuple(json.loads(r[5])), expiry=r[6], unread_count=r[7])
            for r in rows
        ]

    async def subscription(self, topic: str) -> Subscription | None:
        found = await self.subscriptions(topic=topic)
        return found[0] if found else None

    async def replace_subscriptions(
        self, account: str, subscriptions: Sequence[Subscription], *, app_domain: str | None = None
    ) -> tuple[list[Subscription], list[Subscription]]:
        """Make ``account``'s subscriptions (of ``app_domain`` only, when given) exactly ``subscriptions``.

        Returns (added, removed) by topic, so the caller can subscribe and unsubscribe relay topics.
        """
        after = {s.topic: s for s in subscriptions}
        async with self._tx():
            before = {s.topic: s for s in await self.subscriptions(account)
                      if app_domain is None or s.app_domain == app_domain}
            for topic in before.keys() - after.keys():
                await self._db.execute("DELETE FROM subscriptions WHERE topic = ?", (topic,))
            for s in after.values():
                await self._upsert(s)
        added = [s for t, s in after.items() if t not in before]
        removed = [s for t, s in before.items() if t not in after]
        return added, removed

    async def put_subscription(self, subscription: Subscription) -> bool:
        """Insert or update one subscription; True when its topic is new to this device."""
        async with self._tx():
            async with self._db.execute("SELECT 1 FROM subscriptions WHERE topic = ?", (subscription.topic,)) as cur:
                known = await cur.fetchone() is not None
            await self._upsert(subscription)
        return not known

    async def _upsert(self, s: Subscription) -> None:
        await self._db.execute(
            "INSERT INTO subscriptions (topic, account, app_domain, app_authentication_key, sym_key, scope, expiry, "
            "unread_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (topic) DO UPDATE SET "
            "account = excluded.account, app_domain = excluded.app_domain, "
            "app_authentication_key = excluded.app_authentication_key, sym_key = excluded.sym_key, "
            "scope = excluded.scope, expiry = excluded.expiry, unread_count = excluded.unread_count",
            (s.topic, s.account, s.app_domain, s.app_authentication_key, s.sym_key, json.dumps(list(s.scope)),
             s.expiry, s.unread_count),
        )

    async def delete_subscription(self, topic: str) -> Subscription | None:
        async with self._tx():
            found = await self.subscription(topic)
            await self._db.execute("DELETE FROM subscriptions WHERE topic = ?", (topic,))
        return found

    # ------------------------------------------------------------------------------- notifications

    async def add_notification(self, n: Notification, *, update_read: bool = False) -> bool:
        """Store ``n`` unless its id is known; True when it is new. Trims the topic to ``history_cap``.

        ``update_read``: ``n`` comes from the server's history, whose read flag is the account's, so a known
        notification read there (on another device) becomes read here. Read never turns back to unread: the
        protocol has no "mark unread", and a relay delivery (always unread) must not undo a read."""
        async with self._tx():
            cur = await self._db.execute(
                "INSERT OR IGNORE INTO notifications (id, topic, account, app_domain, type, title, body, icon, url, "
                "sent_at, is_read) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (n.id, n.topic, n.account, n.app_domain, n.type, n.title, n.body, n.icon, n.url, n.sent_at,
                 int(n.is_read)),
            )
            new = cur.rowcount == 1
            if not new and update_read and n.is_read:
                await self._db.execute("UPDATE notifications SET is_read = 1 WHERE id = ? AND is_read = 0", (n.id,))
            if new:
                await self._db.execute(
                    "DELETE FROM notifications WHERE topic = ? AND id NOT IN "
                    "(SELECT id FROM notifications WHERE topic = ? ORDER BY sent_at DESC, id DESC LIMIT ?)",
                    (n.topic, n.topic, self.history_cap),
                )
        return new

    async def notifications(
        self, topic: str | None = None, *, account: str | None = None, limit: int = 50, unread_only: bool = False
    ) -> list[Notification]:
        where, args = [], []
        if topic is not None:
            where.append("topic = ?")
            args.append(topic)
        if account is not None:
            where.append("account = ?")
            args.append(account)
        if unread_only:
            where.append("is_read = 0")
        sql = "SELECT id, topic, account, app_domain, type, title, body, icon, url, sent_at, is_read FROM notifications"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY sent_at DESC, id DESC LIMIT ?"
        async with self._db.execute(sql, (*args, limit)) as cur:
            rows = await cur.fetchall()
        return [
            Notification(id=r[0], topic=r[1], account=r[2], app_domain=r[3], type=r[4], title=r[5], body=r[6],
                         icon=r[7], url=r[8], sent_at=r[9], is_read=bool(r[10]))
            for r in rows
        ]

    async def mark_read(self, topic: str, ids: Sequence[str] | None) -> None:
        async with self._tx():
            if ids is None:
                await self._db.execute("UPDATE notifications SET is_read = 1 WHERE topic = ?", (topic,))
            else:
                await self._db.executemany("UPDATE notifications SET is_read = 1 WHERE topic = ? AND id = ?",
                                           [(topic, i) for i in ids])

    async def forget_account(self, account: str) -> None:
        """Drop every trace of ``account`` on this device (after unregister)."""
        async with self._tx():
            for table in ("subscriptions", "notifications", "sync_records", "proposals"):
                await self._db.execute(f"DELETE FROM {table} WHERE account = ?", (account,))
            for prefix in (f"identity:{account}", f"watch:{account}", f"sync:{account}:"):
                await self._db.execute("DELETE FROM keys WHERE substr(name, 1, ?) = ?", (len(prefix), prefix))

    # -------------------------------------------------------------------------------------- sync

    async def sync_records(self, account: str, store: str) -> dict[str, tuple[str | None, int]]:
        async with self._db.execute(
            "SELECT key, value, rpc_id FROM sync_records WHERE account = ? AND store = ?", (account, store)
        ) as cur:
            return {r[0]: (r[1], r[2]) for r in await cur.fetchall()}

    async def put_sync_record(self, account: str, store: str, key: str, value: str | None, rpc_id: int) -> bool:
        """Apply one record last-writer-wins (protocol/sync.py's order); True when it won and so was written."""
        async with self._tx():
            async with self._db.execute(
                "SELECT value, rpc_id FROM sync_records WHERE account = ? AND store = ? AND key = ?",
                (account, store, key),
            ) as cur:
                row = await cur.fetchone()
            if row is not None and SyncEntry(rpc_id, value).rank() <= SyncEntry(row[1], row[0]).rank():
                return False
            await self._db.execute(
                "INSERT INTO sync_records (account, store, key, value, rpc_id) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (account, store, key) DO UPDATE SET value = excluded.value, rpc_id = excluded.rpc_id",
                (account, store, key, value, rpc_id),
            )
            return True

    # ----------------------------------------------------------------------------- proposal flow

    async def put_pairing(self, topic: str, sym_key: bytes, expiry: int) -> None:
        async with self._tx():
            await self._db.execute(
                "INSERT INTO pairings (topic, sym_key, expiry) VALUES (?, ?, ?) ON CONFLICT (topic) DO UPDATE SET "
                "sym_key = excluded.sym_key, expiry = excluded.expiry", (topic, sym_key, expiry),
            )

    async def pairings(self) -> dict[str, tuple[bytes, int]]:
        async with self._db.execute("SELECT topic, sym_key, expiry FROM pairings") as cur:
            return {r[0]: (bytes(r[1]), r[2]) for r in await cur.fetchall()}

    async def put_proposal(self, key: str, account: str, value: str) -> None:
        async with self._tx():
            await self._db.execute(
                "INSERT INTO proposals (key, account, value) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "account = excluded.account, value = excluded.value", (key, account, value),
            )

    async def proposals(self, account: str | None = None) -> dict[str, str]:
        sql = "SELECT key, value FROM proposals"
        args: tuple[str, ...] = ()
        if account is not None:
            sql, args = sql + " WHERE account = ?", (account,)
        async with self._db.execute(sql, args) as cur:
            return {r[0]: r[1] for r in await cur.fetchall()}
