"""What the wallet SDK hands to the application: subscriptions, notifications, apps and events.

Frozen dataclasses, built from the wire shapes (``sbs`` entries, ``msg`` / ``nfs`` items, registry entries) by
the ``from_*`` constructors, which refuse what does not fit rather than guess: a malformed entry from a server
must not become a half-filled subscription in the wallet's database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wcnotify.protocol.crypto import key_from_hex, topic_of
from wcnotify.protocol.did import Account, DidError, DidWebKeys, did_web, normalize_domain, parse_did_document
from wcnotify.protocol.proposal import ProposalRecord


class WalletError(Exception):
    """Base of every error the wallet SDK raises; the message says what to do."""


class MalformedEntryError(WalletError):
    """A server sent a subscription, notification or app entry that is not in the protocol's shape."""


def canonical_account(account: str) -> str:
    """CAIP-10 with an ERC-55 address: the one spelling the wallet file uses."""
    try:
        return str(Account.parse(account).checksummed())
    except DidError as exc:
        raise WalletError(f"not a CAIP-10 account: {exc}") from exc


def _str(data: Mapping[str, Any], key: str, *, optional: bool = False, max_len: int = 4096) -> str:
    value = data.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        raise MalformedEntryError(f"{key} must be a string of at most {max_len} characters")
    return value


def _int(data: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEntryError(f"{key} must be an integer")
    return value


@dataclass(frozen=True, slots=True)
class Subscription:
    """One account's subscription to one app, as the notify server reports it (an ``sbs`` entry).

    ``topic`` (sha256 of ``sym_key``) is the subscription's identity: the notify server publishes the app's
    notifications there and the wallet sends update, delete, history and read requests there.
    """

    topic: str
    account: str
    app_domain: str
    app_authentication_key: str  # did:key of the dapp's Ed25519 key; every notification must verify against it
    sym_key: bytes = field(repr=False)
    scope: tuple[str, ...]  # notification type ids the account receives
    expiry: int
    unread_count: int = 0

    @classmethod
    def from_sbs(cls, entry: object) -> Subscription:
        if not isinstance(entry, Mapping):
            raise MalformedEntryError("a subscription entry must be an object")
        try:
            sym_key = key_from_hex(_str(entry, "symKey"), "symKey")
            account = str(Account.parse(_str(entry, "account")))
            domain = normalize_domain(_str(entry, "appDomain", max_len=300))
        except (ValueError, DidError) as exc:
            raise MalformedEntryError(f"subscription entry: {exc}") from exc
        scope = entry.get("scope", [])
        if not isinstance(scope, list) or not all(isinstance(s, str) and len(s) <= 64 for s in scope):
            raise MalformedEntryError("subscription scope must be a list of type ids")
        return cls(
            topic=topic_of(sym_key), account=account, app_domain=domain,
            app_authentication_key=_str(entry, "appAuthenticationKey", max_len=200), sym_key=sym_key,
            scope=tuple(sorted(scope)), expiry=_int(entry, "expiry", 0),
            unread_count=_int(entry, "unreadNotificationCount", 0),
        )

    def to_sbs(self) -> dict[str, Any]:
        return {
            "appDomain": self.app_domain, "appAuthenticationKey": self.app_authentication_key,
            "symKey": self.sym_key.hex(), "account": self.account, "scope": list(self.scope),
            "expiry": self.expiry, "unreadNotificationCount": self.unread_count,
        }

    @property
    def app(self) -> str:
        """The app's did:web, the ``app`` claim of every request about this subscription."""
        return did_web(self.app_domain)


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification, verified against its app's authentication key before it was stored."""

    id: str
    topic: str
    account: str
    app_domain: str
    type: str
    title: str
    body: str
    icon: str
    url: str
    sent_at: int  # unix ms, as the server stamps it
    is_read: bool = False

    @classmethod
    def from_msg(cls, msg: object, *, topic: str, account: str, app_domain: str) -> Notification:
        """From a ``msg`` claim or an ``nfs`` item (where icon and url may be null)."""
        if not isinstance(msg, Mapping):
            raise MalformedEntryError("a notification must be an object")
        is_read = msg.get("is_read", False)
        return cls(
            id=_str(msg, "id", max_len=64), topic=topic, account=account, app_domain=app_domain,
            type=_str(msg, "type", max_len=64), title=_str(msg, "title", max_len=1024),
            body=_str(msg, "body", max_len=4096), icon=_str(msg, "icon", optional=True, max_len=2048),
            url=_str(msg, "url", optional=True, max_len=2048), sent_at=_int(msg, "sent_at", 0),
            is_read=is_read if isinstance(is_read, bool) else False,
        )


@dataclass(frozen=True, slots=True)
class NotificationType:
    id: str
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class App:
    """An app from a notify server's registry (``GET /v1/apps``): enough to show it and to subscribe."""

    domain: str
    name: str
    description: str
    icons: tuple[str, ...]
    keys: DidWebKeys = field(repr=False)
    types: tuple[NotificationType, ...] = ()

    @classmethod
    def from_registry(cls, entry: object) -> App:
        if not isinstance(entry, Mapping):
            raise MalformedEntryError("a registry entry must be an object")
        try:
            domain = normalize_domain(_str(entry, "appDomain", max_len=300))
            keys = parse_did_document(entry.get("didJson"), did_web(domain))
        except DidError as exc:
            raise MalformedEntryError(f"registry entry: {exc}") from exc
        return cls(
            domain=domain, name=_str(entry, "name", optional=True), description=_str(entry, "description",
                                                                                      optional=True),
            icons=tuple(i for i in entry.get("icons") or [] if isinstance(i, str)), keys=keys,
            types=parse_types(entry.get("notificationTypes")),
        )


def parse_types(value: object) -> tuple[NotificationType, ...]:
    """``notificationTypes`` of a registry entry or a notify-config answer."""
    if not isinstance(value, list):
        raise MalformedEntryError("notificationTypes must be a list")
    out = []
    for item in value:
        if not isinstance(item, Mapping):
            raise MalformedEntryError("a notification type must be an object")
        out.append(NotificationType(_str(item, "id", max_len=64), _str(item, "name", max_len=255),
                                    _str(item, "description", optional=True)))
    return tuple(out)


# ----------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class NotificationReceived:
    """A new notification (verified, stored, shown once even when the relay delivers it twice)."""

    notification: Notification


@dataclass(frozen=True, slots=True)
class NotificationRejected:
    """Something on a subscription topic claimed to be a notification but failed verification; not stored."""

    topic: str
    app_domain: str
    reason: str


@dataclass(frozen=True, slots=True)
class SubscriptionsChanged:
    """The account's subscriptions changed (on another device, through watch or Sync); the full new list."""

    account: str
    subscriptions: tuple[Subscription, ...]
    source: str  # "watch" | "sync"


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    """A dapp asks the account to subscribe (push proposal); answer with ``client.proposals.approve(record.key)``
    or ``reject(record.key, reason)``."""

    record: ProposalRecord
    source: str  # "pairing" | "sync" (received by another device of the account)


@dataclass(frozen=True, slots=True)
class ProposalResolved:
    """A proposal was answered: here, on another device, or automatically (6001, already subscribed)."""

    record: ProposalRecord


WalletEvent = (
    NotificationReceived | NotificationRejected | SubscriptionsChanged | ProposalReceived | ProposalResolved
)
