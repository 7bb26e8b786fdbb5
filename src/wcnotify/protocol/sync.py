"""The Sync API: the message to sign, the key of each store, its records and last-writer-wins state.

Rules (protocol.md §6; spec ``clients/core/sync``; Kotlin ``PrototypeTest``/``Store``; notify-js @dc0eaeb):

* The account signs ``SYNC_MESSAGE_PREFIX + caip10 + SYNC_MESSAGE_SUFFIX`` once; every store key comes from
  that signature, so each device that holds it reaches the same stores without talking to the others.
* entropy = sha256(utf8(signature exactly as returned, ``0x`` included)) -> 24-word English BIP-39
  mnemonic -> seed (PBKDF2, empty passphrase) -> BIP-32 secp256k1 master -> child private key at
  ``m/77'/0'/0/<n1>/<n2>/...``. Each ``n`` is the big-endian integer of a 4-byte chunk of the store name
  (the last chunk shorter, not padded), non-hardened. That child key is the store's ChaCha20-Poly1305 sym
  key and its topic is ``sha256(key)``.
* Store names must be ASCII: a chunk starting with a byte >= 0x80 would be a hardened index, and the
  reference clients disagree beyond ASCII (Kotlin chunks UTF-16 characters, not UTF-8 bytes).
* Records are JSON-RPC requests on the store topic: ``wc_syncSet {key, value}`` and ``wc_syncDel {key}``,
  with no response. ``value`` is a string (Notify stores put a JSON document in it).
* Last writer wins per key: the record with the highest JSON-RPC id (``payloadId``, ms * 1000 + 3 random
  digits) is the state of its key; a deletion stays as a tombstone with its id so an older set arriving
  late cannot resurrect the key. Equal ids are broken without looking at arrival order: a deletion beats
  a set (removing is the safe outcome), and between two sets the greater value (code-point order) wins.
  This makes merging commutative, associative and idempotent, so every device converges on the same
  state whatever order the relay or the history server delivers records in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from bip32 import BIP32
from mnemonic import Mnemonic

from wcnotify.protocol.crypto import topic_of
from wcnotify.protocol.jsonrpc import Request
from wcnotify.spec import (
    JSONRPC_VERSION,
    SYNC_DEL,
    SYNC_DERIVATION_ROOT,
    SYNC_MESSAGE_PREFIX,
    SYNC_MESSAGE_SUFFIX,
    SYNC_PATH_CHUNK_BYTES,
    SYNC_SET,
    RpcSpec,
)

# Loads the packaged English wordlist once, at import, so that no call reads a file.
_BIP39 = Mnemonic("english")


class SyncError(ValueError):
    """A store name, record or signature the Sync API cannot use."""


# ------------------------------------------------------------------------------------ key derivation


def sync_message(caip10: str) -> str:
    """The text the account signs (EIP-191) to enable Sync. One space after the colon."""
    return SYNC_MESSAGE_PREFIX + caip10 + SYNC_MESSAGE_SUFFIX


def sync_entropy(signature: str) -> bytes:
    """sha256 of the signature string exactly as the wallet returned it, ``0x`` and case included."""
    if not isinstance(signature, str) or not signature:
        raise SyncError("the sync signature must be a non-empty string")
    return hashlib.sha256(signature.encode()).digest()


def sync_mnemonic(signature: str) -> str:
    """The 24-word BIP-39 English mnemonic of :func:`sync_entropy`."""
    return str(_BIP39.to_mnemonic(sync_entropy(signature)))


def _path_indices(store_name: str) -> list[int]:
    if not isinstance(store_name, str) or not store_name:
        raise SyncError("a store name must be a non-empty string")
    if not store_name.isascii():
        raise SyncError(f"store name {store_name!r} is not ASCII; Sync derives store keys from ASCII names")
    raw = store_name.encode("ascii")
    step = SYNC_PATH_CHUNK_BYTES
    return [int.from_bytes(raw[i : i + step], "big") for i in range(0, len(raw), step)]


def store_path(store_name: str) -> str:
    """The BIP-32 path of a store, e.g. ``m/77'/0'/0/1836658037/...`` for ``my-user-profile``."""
    return "/".join([SYNC_DERIVATION_ROOT, *map(str, _path_indices(store_name))])


def derive_store_key(signature: str, store_name: str) -> bytes:
    """The 32-byte private key at the store's path: the store's sym key."""
    path = store_path(store_name)
    seed = _BIP39.to_seed(sync_mnemonic(signature))
    return bytes(BIP32.from_seed(seed).get_privkey_from_path(path))


def store_topic(key: bytes) -> str:
    """The relay topic of a store: ``sha256(key)``, as for any sym key."""
    return topic_of(key)


@dataclass(frozen=True, repr=False)
class SyncKeys:
    """A store's name, sym key and topic. ``repr`` never shows the key."""

    store_name: str
    key: bytes
    topic: str

    def __repr__(self) -> str:
        return f"SyncKeys(store_name={self.store_name!r}, topic={self.topic})"


def derive_store(signature: str, store_name: str) -> SyncKeys:
    key = derive_store_key(signature, store_name)
    return SyncKeys(store_name, key, store_topic(key))


# -------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class SyncSet:
    """``wc_syncSet``: ``key`` now holds ``value`` in ``store``, as of JSON-RPC id ``id``."""

    rpc: ClassVar[RpcSpec] = SYNC_SET
    store: str
    key: str
    value: str
    id: int


@dataclass(frozen=True)
class SyncDel:
    """``wc_syncDel``: ``key`` was removed from ``store`` as of JSON-RPC id ``id``."""

    rpc: ClassVar[RpcSpec] = SYNC_DEL
    store: str
    key: str
    id: int


SyncRecord = SyncSet | SyncDel


def record_params(record: SyncRecord) -> dict[str, str]:
    if isinstance(record, SyncSet):
        return {"key": record.key, "value": record.value}
    return {"key": record.key}


def record_payload(record: SyncRecord) -> dict[str, Any]:
    """The JSON-RPC request a device publishes (type 0 envelope, store key) on the store topic."""
    return {
        "id": record.id,
        "jsonrpc": JSONRPC_VERSION,
        "method": record.rpc.method,
        "params": record_params(record),
    }


def record_request(record: SyncRecord) -> Request:
    """The same request as a :class:`~wcnotify.protocol.jsonrpc.Request`, ready for ``jsonrpc.encode``."""
    return Request(record.id, record.rpc.method, record_params(record))


def parse_record(store: str, payload: object) -> SyncRecord:
    """Read a decrypted record (the decoded JSON object) received on ``store``'s topic."""
    if not isinstance(payload, dict):
        raise SyncError("a sync record must be a JSON object")
    if payload.get("jsonrpc") != JSONRPC_VERSION:
        raise SyncError(f'a sync record must have "jsonrpc": "{JSONRPC_VERSION}"')
    return _record(store, payload.get("id"), payload.get("method"), payload.get("params"))


def record_from_request(store: str, request: Request) -> SyncRecord:
    """Read a record from a request already parsed by ``jsonrpc.parse_message``."""
    return _record(store, request.id, request.method, request.params)


def _record(store: str, msg_id: object, method: object, params: object) -> SyncRecord:
    if isinstance(msg_id, bool) or not isinstance(msg_id, int):
        raise SyncError("a sync record id must be a JSON integer (it orders the writes)")
    if method not in (SYNC_SET.method, SYNC_DEL.method):
        raise SyncError(f"not a sync method: {method!r}")
    if not isinstance(params, dict):
        raise SyncError(f"{method} params must be an object")
    key = params.get("key")
    if not isinstance(key, str):
        raise SyncError(f"{method} params.key must be a string")
    if method == SYNC_DEL.method:
        return SyncDel(store, key, msg_id)
    value = params.get("value")
    if not isinstance(value, str):
        raise SyncError(f"{method} params.value must be a string")
    return SyncSet(store, key, value, msg_id)


# ----------------------------------------------------------------------------- last-writer-wins state


@dataclass(frozen=True)
class SyncEntry:
    """The winning write of one key: a value, or a tombstone (``value is None``) kept for its id."""

    id: int
    value: str | None

    def rank(self) -> tuple[int, int, str]:
        """Total order of writes: id first; on equal ids a tombstone, then the greater value."""
        return (self.id, 1, "") if self.value is None else (self.id, 0, self.value)


def _entry(record: SyncRecord) -> SyncEntry:
    return SyncEntry(record.id, record.value if isinstance(record, SyncSet) else None)


@dataclass(frozen=True)
class SyncState:
    """One store's state: the winning entry per key, tombstones included (persist them all).

    Pure: :meth:`apply`, :meth:`apply_all` and :meth:`merge` return a new state with a read-only
    ``entries``. Not hashable.
    """

    store: str
    entries: Mapping[str, SyncEntry] = field(default_factory=dict)

    def accepts(self, record: SyncRecord) -> bool:
        """True when ``record`` would change this state (it beats the key's current entry)."""
        self._check_store(record)
        current = self.entries.get(record.key)
        return current is None or _entry(record).rank() > current.rank()

    def apply(self, record: SyncRecord) -> SyncState:
        return self.apply_all((record,))

    def apply_all(self, records: Iterable[SyncRecord]) -> SyncState:
        entries = dict(self.entries)
        for record in records:
            self._check_store(record)
            _put(entries, record.key, _entry(record))
        return SyncState(self.store, MappingProxyType(entries))

    def merge(self, other: SyncState) -> SyncState:
        """The join of two replicas of the same store."""
        if other.store != self.store:
            raise SyncError(f"cannot merge store {other.store!r} into {self.store!r}")
        entries = dict(self.entries)
        for key, entry in other.entries.items():
            _put(entries, key, entry)
        return SyncState(self.store, MappingProxyType(entries))

    def get(self, key: str) -> str | None:
        entry = self.entries.get(key)
        return None if entry is None else entry.value

    def items(self) -> dict[str, str]:
        """The live keys and their values (tombstones left out)."""
        return {key: entry.value for key, entry in self.entries.items() if entry.value is not None}

    def _check_store(self, record: SyncRecord) -> None:
        if record.store != self.store:
            raise SyncError(f"record for store {record.store!r} applied to store {self.store!r}")


def _put(entries: dict[str, SyncEntry], key: str, entry: SyncEntry) -> None:
    current = entries.get(key)
    if current is None or entry.rank() > current.rank():
        entries[key] = entry
