"""The value a wallet keeps in the ``pushSubscription`` Sync store: one subscription, as a JSON string.

Rules (protocol.md §6 "Stores"; the seed's ``PushSubscription``; Kotlin ``PushSyncStores``):

* Key: the subscription topic. Value: a JSON *string* of ``{topic, account, relay: {protocol: "irn"},
  metadata: {name, description, url, icons}, scope: {<type name>: {description, enabled}}, expiry, symKey}``.
  ``symKey`` is what lets another device read the topic (the seed's newer peers carry it).
* Additions of ours, which older peers ignore: ``appAuthenticationKey`` (the dapp's did:key; without it a
  receiving device must resolve the app's did.json before it can verify a notification) and an ``id`` in
  each scope entry (final Notify names types by UUID; update requests need the ids).
* Reading is strict about what a device acts on: ``symKey`` must be 32 bytes of hex and ``topic`` must be
  sha256 of it (a value naming someone else's topic is refused), ``account`` CAIP-10, ``metadata.url`` an
  http(s) URL whose host is the app domain. Everything else is optional and defaulted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from wcnotify.protocol.crypto import CryptoError, key_from_hex, topic_of
from wcnotify.protocol.did import Account, DidError, did_web_domain, domain_scheme, url_did_web
from wcnotify.spec import PAIRING_RELAY_PROTOCOL

_MAX_VALUE_BYTES = 16_384


class NotifySyncError(ValueError):
    """A pushSubscription value that cannot be acted on; the message names the field."""


@dataclass(frozen=True)
class ScopeEntry:
    name: str
    description: str
    enabled: bool
    id: str | None = None


@dataclass(frozen=True)
class PushSubscriptionValue:
    topic: str
    account: str
    app_domain: str
    sym_key: bytes = field(repr=False)
    expiry: int
    scope: tuple[ScopeEntry, ...] = ()
    name: str = ""
    description: str = ""
    icons: tuple[str, ...] = ()
    app_authentication_key: str | None = None

    @property
    def enabled_ids(self) -> tuple[str, ...]:
        return tuple(sorted(s.id for s in self.scope if s.enabled and s.id))

    def encode(self) -> str:
        value: dict[str, Any] = {
            "topic": self.topic,
            "account": self.account,
            "relay": {"protocol": PAIRING_RELAY_PROTOCOL},
            "metadata": {"name": self.name or self.app_domain, "description": self.description,
                         "url": f"{domain_scheme(self.app_domain)}://{self.app_domain}", "icons": list(self.icons)},
            "scope": {s.name: {"description": s.description, "enabled": s.enabled, **({"id": s.id} if s.id else {})}
                      for s in self.scope},
            "expiry": self.expiry,
            "symKey": self.sym_key.hex(),
        }
        if self.app_authentication_key:
            value["appAuthenticationKey"] = self.app_authentication_key
        return orjson.dumps(value).decode()


def _text(data: Mapping[str, Any], key: str, limit: int = 2048) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise NotifySyncError(f"{key} must be a string of at most {limit} characters")
    return value


def parse_push_subscription(key: str, value: str) -> PushSubscriptionValue:
    """Read the value stored under ``key`` (the topic) in the pushSubscription store."""
    if len(value.encode("utf-8", "surrogatepass")) > _MAX_VALUE_BYTES:  # a lone surrogate: orjson refuses it
        raise NotifySyncError(f"value is larger than {_MAX_VALUE_BYTES} bytes")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise NotifySyncError(f"value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise NotifySyncError("value must be a JSON object")
    try:
        sym_key = key_from_hex(_text(data, "symKey"), "symKey")
    except CryptoError as exc:
        raise NotifySyncError(f"symKey: {exc}") from exc
    topic = topic_of(sym_key)
    if _text(data, "topic") != topic or key != topic:
        raise NotifySyncError("topic (and the record key) must be sha256 of symKey")
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        raise NotifySyncError("metadata must be an object")
    try:
        account = str(Account.parse(_text(data, "account")))
        app_domain = did_web_domain(url_did_web(_text(metadata, "url")))
    except DidError as exc:
        raise NotifySyncError(f"account or metadata.url: {exc}") from exc
    expiry = data.get("expiry", 0)
    if isinstance(expiry, bool) or not isinstance(expiry, int):
        raise NotifySyncError("expiry must be an integer")
    raw_scope = data.get("scope") or {}
    if not isinstance(raw_scope, dict) or len(raw_scope) > 256:
        raise NotifySyncError("scope must be an object of at most 256 types")
    scope = []
    for name, entry in raw_scope.items():
        if not isinstance(entry, dict):
            raise NotifySyncError(f"scope.{name[:64]} must be an object")
        enabled = entry.get("enabled", False)
        type_id = entry.get("id")
        scope.append(ScopeEntry(name[:255], _text(entry, "description"), enabled is True,
                                type_id if isinstance(type_id, str) and len(type_id) <= 64 else None))
    icons = metadata.get("icons") or []
    auth = data.get("appAuthenticationKey")
    return PushSubscriptionValue(
        topic=topic, account=account, app_domain=app_domain, sym_key=sym_key, expiry=expiry,
        scope=tuple(scope), name=_text(metadata, "name"), description=_text(metadata, "description"),
        icons=tuple(i for i in icons if isinstance(i, str))[:16] if isinstance(icons, list) else (),
        app_authentication_key=auth if isinstance(auth, str) and len(auth) <= 200 else None,
    )
