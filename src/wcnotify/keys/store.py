"""The identity keys table: which Ed25519 identity key belongs to which account, and the CACAO that says so.

Rules the store enforces (the HTTP layer only translates its answers):
* an identity key belongs to one account. Registering it again for the same address (any chain: the
  address is what identifies the account, as the notify server compares it) succeeds and keeps the CACAO
  already stored. Keeping the first one matters: every CACAO is public (``GET /identity`` serves it), so
  "latest wins" would let anyone replay an older, broader grant over a newer, narrower one;
* registering it for another address is refused (:class:`IdentityConflictError`). The reference silently
  ignores that case, which leaves the caller believing it registered;
* one statement per write, so a failure leaves nothing half-written.

Two replicas registering the same new key at once: one INSERT wins, the other hits the primary key and
re-reads, so the answer is the same as if they had come one after the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from wcnotify.protocol.did import Account
from wcnotify.storage.engine import reading
from wcnotify.storage.tables import identities

Clock = Callable[[], float]


class IdentityConflictError(Exception):
    """The identity key is already registered to another account."""

    def __init__(self, identity_key: str, account: str) -> None:
        super().__init__(f"identity key {identity_key} is already registered to another account ({account})")
        self.identity_key = identity_key
        self.account = account


@dataclass(frozen=True)
class StoredIdentity:
    """One row: the multibase key (``z6Mk…``), the CAIP-10 account as signed, and the CACAO JSON text."""

    identity_key: str
    account: str
    cacao: str
    created_at: int  # Unix milliseconds

    @property
    def parsed_account(self) -> Account:
        return Account.parse(self.account)


class RegisterOutcome(Enum):
    CREATED = "created"
    ALREADY_REGISTERED = "already_registered"


class IdentityStore:
    """SQLAlchemy Core access to ``keys_identities`` over a shared engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get(self, identity_key: str) -> StoredIdentity | None:
        async with reading(self.engine) as conn:
            row = (await conn.execute(select(identities).where(identities.c.identity_key == identity_key))).first()
        if row is None:
            return None
        return StoredIdentity(row.identity_key, row.account, row.cacao, row.created_at)

    async def register(self, identity_key: str, account: Account, cacao_json: str, *, now_ms: int) -> RegisterOutcome:
        """Store ``identity_key`` for ``account``; idempotent for the same address, refused for another."""
        for _ in range(2):  # the second round only after losing an INSERT race
            existing = await self.get(identity_key)
            if existing is not None:
                if not existing.parsed_account.same_address(account):
                    raise IdentityConflictError(identity_key, existing.account)
                return RegisterOutcome.ALREADY_REGISTERED
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        insert(identities).values(
                            identity_key=identity_key,
                            account=str(account),
                            address=account.address_key,
                            cacao=cacao_json,
                            created_at=now_ms,
                        )
                    )
            except IntegrityError:
                continue
            return RegisterOutcome.CREATED
        raise RuntimeError(f"identity key {identity_key} was inserted and deleted concurrently; retry")

    async def delete(self, identity_key: str, account: Account) -> bool:
        """Delete the key if it is registered to ``account``'s address; False when no such row exists."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(identities).where(
                    identities.c.identity_key == identity_key, identities.c.address == account.address_key
                )
            )
        return bool(result.rowcount)

    async def count(self) -> int:
        """Rows in the table (tests and the health answer)."""
        async with reading(self.engine) as conn:
            return int((await conn.execute(select(func.count()).select_from(identities))).scalar_one())
