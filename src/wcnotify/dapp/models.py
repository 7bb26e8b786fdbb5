"""What the dapp API takes and answers, as frozen dataclasses (shapes: docs/dapp-api.md, docs/webhooks.md).

Answers are parsed field by field, so a server that answers something else fails here with a KeyError or
TypeError (the client turns it into :class:`~wcnotify.dapp.errors.ServerError`) rather than later, in the
dapp's code, as a missing dict key. Secrets (a project's, a webhook's) are left out of every ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wcnotify import spec

__all__ = [
    "AppConfig",
    "BroadcastResult",
    "CreatedWebhook",
    "FailedAccount",
    "ImageUrls",
    "Notification",
    "NotificationStatus",
    "NotificationType",
    "ProjectCredentials",
    "ProjectInfo",
    "ProjectKeys",
    "SendRequest",
    "SendResult",
    "Subscriber",
    "SubscribersPage",
    "WebhookInfo",
    "WelcomeNotification",
    "WithdrawResult",
]


def _str_or_none(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected a string or null, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


# ---------------------------------------------------------------------------------------- projects


@dataclass(frozen=True)
class ProjectCredentials:
    """A new project's id and secret. The server shows the secret once, in the answer that creates it:
    store it (it is what every dapp API call is authorized with)."""

    project_id: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class ProjectKeys:
    """The project's keys, hex: what its did.json publishes. Wallets send their subscribe request to
    sha256(``subscribe_key``) and check that notifications are signed by ``authentication_key``."""

    subscribe_key: str
    authentication_key: str

    @classmethod
    def from_json(cls, data: Any) -> ProjectKeys:
        return cls(str(data["subscribeKey"]), str(data["authenticationKey"]))


@dataclass(frozen=True)
class ProjectInfo:
    """A project as the server keeps it; ``app_domain`` and the keys are None until it has an app domain,
    ``listed`` says whether the public app registry shows it."""

    project_id: str
    name: str
    description: str
    icons: tuple[str, ...]
    app_domain: str | None
    subscribe_key: str | None
    authentication_key: str | None
    listed: bool

    @classmethod
    def from_json(cls, data: Any) -> ProjectInfo:
        return cls(
            str(data["projectId"]), str(data["name"]), str(data["description"]), _strings(data["icons"]),
            _str_or_none(data["appDomain"]), _str_or_none(data["subscribeKey"]),
            _str_or_none(data["authenticationKey"]), bool(data["listed"]),
        )


# ------------------------------------------------------------------------------- notification types


@dataclass(frozen=True)
class ImageUrls:
    """Icons of a notification type at three sizes; wallets show the one that fits."""

    sm: str | None = None
    md: str | None = None
    lg: str | None = None

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in (("sm", self.sm), ("md", self.md), ("lg", self.lg)) if v}

    @classmethod
    def from_json(cls, data: Any) -> ImageUrls:
        data = data or {}
        return cls(_str_or_none(data.get("sm")), _str_or_none(data.get("md")), _str_or_none(data.get("lg")))


@dataclass(frozen=True)
class NotificationType:
    """A kind of notification wallets subscribe to. ``id`` is what a notification's ``type`` names and what
    a wallet's subscription scope lists; ``name`` and ``description`` are what the wallet shows."""

    id: str
    name: str
    description: str = ""
    image_urls: ImageUrls = ImageUrls()

    @classmethod
    def from_json(cls, data: Any) -> NotificationType:
        return cls(str(data["id"]), str(data["name"]), str(data.get("description") or ""),
                   ImageUrls.from_json(data.get("imageUrls")))


@dataclass(frozen=True)
class AppConfig:
    """What wallets learn about an app before subscribing (the explorer's ``notify-config`` shape, which the
    notify server serves publicly for its projects): its name, icons and notification types."""

    project_id: str
    name: str
    description: str
    app_domain: str | None
    icons: tuple[str, ...]
    notification_types: tuple[NotificationType, ...]

    @classmethod
    def from_json(cls, data: Any) -> AppConfig:
        app = data["data"]
        return cls(
            str(app["id"]), str(app["name"]), str(app["description"]), _str_or_none(app["appDomain"]),
            _strings(app["icons"]), tuple(NotificationType.from_json(t) for t in app["notificationTypes"]),
        )

    def wc_notify_config(self) -> dict[str, Any]:
        """The ``/.well-known/wc-notify-config.json`` document (schema version 1, protocol.md §4).

        The schema asks for type ids of 2-32 characters from ``[a-z0-9_-]``; ours are UUIDs (36), and they
        are written as they are, because a wallet that reads this file puts the ids in its subscription's
        scope, and only these ids mean anything to the notify server."""
        return {
            "schemaVersion": 1, "name": self.name, "description": self.description, "icons": list(self.icons),
            "types": [{"id": t.id, "name": t.name, "description": t.description} for t in self.notification_types],
        }


# ------------------------------------------------------------------------------------------ sending


@dataclass(frozen=True)
class Notification:
    """What a wallet shows: ``type`` is a notification type id of the project, ``title`` 1-64 characters,
    ``body`` 1-255, ``icon`` and ``url`` at most 255 (the server checks, and names the field it refuses)."""

    type: str
    title: str
    body: str
    icon: str | None = None
    url: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"type": self.type, "title": self.title, "body": self.body}
        if self.icon is not None:
            out["icon"] = self.icon
        if self.url is not None:
            out["url"] = self.url
        return out


@dataclass(frozen=True)
class SendRequest:
    """One notification for some accounts, one item of a :meth:`NotifyDappClient.send_many` call.
    ``notification_id`` makes it idempotent: the client draws a random one when it is None."""

    notification: Notification
    accounts: tuple[str, ...]
    notification_id: str | None = None


@dataclass(frozen=True)
class FailedAccount:
    """An account the notification will not reach, and why (``spec.NOTIFY_REASON_*``: not subscribed to
    this notification type, or the subscriber's own rate limit)."""

    account: str
    reason: str


@dataclass(frozen=True)
class SendResult:
    """Where each account of a send stands, echoed as the dapp wrote it. ``sent`` means queued for delivery
    (follow it with ``notification_status(notification_ids[i])``); ``not_found`` accounts are not subscribed
    to the app at all. ``notification_ids`` are the ids of the notifications sent, in request order."""

    notification_ids: tuple[str, ...]
    sent: tuple[str, ...]
    failed: tuple[FailedAccount, ...]
    not_found: tuple[str, ...]

    @property
    def notification_id(self) -> str:
        """The id of a single notification's send (the first one of a ``send_many``)."""
        return self.notification_ids[0]

    @property
    def all_sent(self) -> bool:
        return not self.failed and not self.not_found

    def reason(self, account: str) -> str | None:
        """Why ``account`` (as sent) was not queued: a failure reason, ``"not subscribed"``, or None when sent."""
        for failed in self.failed:
            if failed.account == account:
                return failed.reason
        return "not subscribed" if account in self.not_found else None

    @classmethod
    def from_json(cls, ids: tuple[str, ...], data: Any) -> SendResult:
        failed = tuple(FailedAccount(str(f["account"]), str(f["reason"])) for f in data["failed"])
        return cls(ids, _strings(data["sent"]), failed, _strings(data["not_found"]))


@dataclass(frozen=True)
class BroadcastResult:
    """``queued``: how many subscribers of the type the notification was queued for (0 for a repeat)."""

    notification_id: str
    queued: int

    @classmethod
    def from_json(cls, data: Any) -> BroadcastResult:
        return cls(str(data["notification_id"]), _int(data["queued"]))


@dataclass(frozen=True)
class NotificationStatus:
    """How far a notification's delivery got, counted per recipient. ``queued`` includes deliveries being
    published right now; ``failed`` ones were given up (24 h without the relay accepting them)."""

    notification_id: str
    type: str
    title: str
    created_at: int  # Unix ms
    withdrawn_at: int | None
    total: int
    queued: int
    published: int
    failed: int
    withdrawn: int

    @property
    def settled(self) -> bool:
        """Nothing is left to deliver: every recipient's delivery was published, failed or withdrawn."""
        return self.queued == 0

    @classmethod
    def from_json(cls, data: Any) -> NotificationStatus:
        withdrawn_at = data["withdrawn_at"]
        return cls(
            str(data["notification_id"]), str(data["type"]), str(data["title"]), _int(data["created_at"]),
            None if withdrawn_at is None else _int(withdrawn_at), _int(data["total"]), _int(data["queued"]),
            _int(data["published"]), _int(data["failed"]), _int(data["withdrawn"]),
        )


@dataclass(frozen=True)
class WithdrawResult:
    """``withdrawn_now``: deliveries this call stopped; ``status``: the notification afterwards."""

    withdrawn_now: int
    status: NotificationStatus


@dataclass(frozen=True)
class WelcomeNotification:
    """Sent to a wallet's first subscription when ``enabled`` and ``type`` (a type id) is in its scope."""

    enabled: bool
    type: str
    title: str
    body: str
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "type": self.type, "title": self.title, "body": self.body, "url": self.url}

    @classmethod
    def from_json(cls, data: Any) -> WelcomeNotification:
        return cls(bool(data["enabled"]), str(data["type"]), str(data["title"]), str(data["body"]),
                   _str_or_none(data.get("url")))


# -------------------------------------------------------------------------------------- subscribers


@dataclass(frozen=True)
class Subscriber:
    """A subscribed account (as the wallet subscribed with it), the type ids it wants, and since when."""

    account: str
    notification_types: tuple[str, ...]
    created_at: int  # Unix ms

    @classmethod
    def from_json(cls, data: Any) -> Subscriber:
        return cls(str(data["account"]), _strings(data["notification_types"]), _int(data["created_at"]))


@dataclass(frozen=True)
class SubscribersPage:
    """One page of the subscriber list; pass ``next_cursor`` back for the next, until it is None."""

    subscribers: tuple[Subscriber, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Any) -> SubscribersPage:
        return cls(tuple(Subscriber.from_json(s) for s in data["subscribers"]), _str_or_none(data["next_cursor"]))


# ----------------------------------------------------------------------------------------- webhooks


@dataclass(frozen=True)
class CreatedWebhook:
    """A new webhook. ``secret`` is shown in this answer only: it is the key to verify deliveries with
    (:func:`wcnotify.dapp.webhooks.verify_webhook`); store it."""

    id: str
    url: str
    events: tuple[spec.WebhookEvent, ...]
    created_at: int
    secret: str = field(repr=False)

    @classmethod
    def from_json(cls, data: Any) -> CreatedWebhook:
        events = tuple(spec.WebhookEvent(e) for e in _strings(data["events"]))
        return cls(str(data["id"]), str(data["url"]), events, _int(data["created_at"]), str(data["secret"]))


@dataclass(frozen=True)
class WebhookInfo:
    """A webhook and how its deliveries are going (docs/webhooks.md): ``last_error`` and
    ``consecutive_failures`` say why a receiver is not getting events; ``next_attempt_at`` (Unix ms) when
    the next retry is due."""

    id: str
    url: str
    events: tuple[spec.WebhookEvent, ...]
    created_at: int
    delivered: int
    failed: int
    pending: int
    consecutive_failures: int
    last_error: str | None
    next_attempt_at: int | None

    @classmethod
    def from_json(cls, data: Any) -> WebhookInfo:
        next_attempt = data["next_attempt_at"]
        return cls(
            str(data["id"]), str(data["url"]), tuple(spec.WebhookEvent(e) for e in _strings(data["events"])),
            _int(data["created_at"]), _int(data["delivered"]), _int(data["failed"]), _int(data["pending"]),
            _int(data["consecutive_failures"]), _str_or_none(data["last_error"]),
            None if next_attempt is None else _int(next_attempt),
        )
