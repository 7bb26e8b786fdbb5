"""Sending notifications: ``/notify`` (v0 and v1, reference-compatible), a broadcast by type, a
notification's delivery status, and withdrawing what is not yet delivered.

A request only validates and enqueues (reference-server.md §4): it answers once the rows are committed, and
the delivery workers publish them. Everything is validated before anything is written: a request with one
bad account or one unknown type changes nothing.

Rate limits (:mod:`wcnotify.notify.ratelimit`): each send or broadcast request first takes a token of the
project's send bucket (429 with ``Retry-After`` when empty, and nothing is queued); each account matched by
``/notify`` takes a token of its subscriber's bucket (``failed``: "Rate limit exceeded" when empty).
"""

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Field

from wcnotify import spec
from wcnotify.notify import sending
from wcnotify.notify.api.common import ApiError, AuthedProject, Body, Service
from wcnotify.notify.ratelimit import retry_after
from wcnotify.notify.sending import NotificationIn, SendResult, UnknownTypeError, WithdrawnError
from wcnotify.protocol.did import Account, DidError

router = APIRouter()

UrlField = Field(default=None, min_length=1, max_length=spec.NOTIFY_ICON_URL_MAX)


class NotificationBody(Body):
    type: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=spec.NOTIFY_TITLE_MAX)
    body: str = Field(min_length=1, max_length=spec.NOTIFY_BODY_MAX)
    icon: str | None = UrlField
    url: str | None = UrlField

    def content(self) -> NotificationIn:
        return NotificationIn(self.type, self.title, self.body, self.icon, self.url)


class NotifyIn(Body):
    notification_id: str | None = Field(default=None, min_length=1, max_length=255)
    notification: NotificationBody
    accounts: list[Annotated[str, Field(max_length=200)]] = Field(max_length=spec.NOTIFY_SEND_MAX_ACCOUNTS)


class BroadcastIn(Body):
    notification_id: str | None = Field(default=None, min_length=1, max_length=255)
    notification: NotificationBody


def _accounts(item: NotifyIn, where: str) -> list[tuple[str, Account]]:
    parsed = []
    for i, value in enumerate(item.accounts):
        try:
            parsed.append((value, Account.parse(value)))
        except DidError as exc:
            raise ApiError(422, f"{where}accounts.{i}: {exc}") from None
    return parsed


def _unknown_type(where: str, type_id: str) -> ApiError:
    return ApiError(
        422, f"{where}notification.type: {type_id[:64]!r} is not a notification type of this project "
        "(GET /v1/{projectId}/notification-types lists them)",
    )


def _withdrawn(notification_id: str) -> ApiError:
    return ApiError(409, f"notification_id {notification_id[:64]!r} was withdrawn; send it under a new id")


async def _take_send_token(service: Service, project: AuthedProject) -> None:
    """The project's send bucket: 429 with ``Retry-After`` (whole seconds) when it is empty."""
    wait = await service.limits.send(project.id)
    if wait:
        seconds = retry_after(wait)
        rate = service.limits.send_rate
        assert rate is not None  # a bucket that is off never asks to wait
        raise ApiError(
            429, f"Rate limit exceeded: this project may send {rate.per_second:g} requests per second (bursts of "
            f"{rate.burst:g}). Try again in {seconds} s (at {int(service.clock()) + seconds}).",
            headers={"Retry-After": str(seconds)},
        )


async def _send(service: Service, project: AuthedProject, items: list[NotifyIn], prefixed: bool) -> dict[str, Any]:
    await _take_send_token(service, project)  # first, as the reference: a flood is refused before any work
    total = sum(len(item.accounts) for item in items)
    if total > spec.NOTIFY_SEND_MAX_ACCOUNTS:
        raise ApiError(422, f"Too many notifications: {total} > {spec.NOTIFY_SEND_MAX_ACCOUNTS}")
    checked = [(item, _accounts(item, f"{i}." if prefixed else "")) for i, item in enumerate(items)]
    result = SendResult()
    now_ms = service.now_ms()
    async with service.db.write() as conn:
        for i, (item, accounts) in enumerate(checked):
            try:
                result.merge(
                    await sending.send_to_accounts(
                        conn, project, item.notification.content(), notification_id=item.notification_id,
                        accounts=accounts, now_ms=now_ms, allow=service.limits.deliveries,
                    )
                )
            except UnknownTypeError:
                raise _unknown_type(f"{i}." if prefixed else "", item.notification.type) from None
            except WithdrawnError:
                raise _withdrawn(item.notification_id or "") from None
    if result.queued:
        service.deliverer.wake()
    return result.to_json()


@router.post("/{project_id}/notify")
async def notify_v0(body: NotifyIn, project: AuthedProject, service: Service) -> dict[str, Any]:
    """Queue one notification for the given accounts: ``{sent, failed: [{account, reason}], not_found}``."""
    return await _send(service, project, [body], prefixed=False)


@router.post("/v1/{project_id}/notify")
async def notify_v1(body: list[NotifyIn], project: AuthedProject, service: Service) -> dict[str, Any]:
    """Several notifications at once (at most 500 accounts in all), answered as one aggregated object."""
    return await _send(service, project, body, prefixed=True)


@router.post("/v1/{project_id}/notify/broadcast")
async def broadcast(body: BroadcastIn, project: AuthedProject, service: Service) -> dict[str, Any]:
    """Queue the notification for every subscriber of its type; the dapp need not page through accounts."""
    await _take_send_token(service, project)
    async with service.db.write() as conn:
        try:
            notification_id, queued = await sending.broadcast(
                conn, project, body.notification.content(), body.notification_id, service.now_ms(),
                part_size=service.config.delivery.batch,
            )
        except UnknownTypeError:
            raise _unknown_type("", body.notification.type) from None
        except WithdrawnError:
            raise _withdrawn(body.notification_id or "") from None
    if queued:
        service.deliverer.wake()
    return {"notification_id": notification_id, "queued": queued}


@router.get("/v1/{project_id}/notifications/{notification_id}")
async def notification_status(notification_id: str, project: AuthedProject, service: Service) -> dict[str, Any]:
    """How far delivery got: ``queued`` (including in flight), ``published``, ``failed``, ``withdrawn``."""
    async with service.db.read(snapshot=True) as conn:
        status = await sending.notification_status(conn, project, notification_id)
    if status is None:
        raise ApiError(404, f"no notification {notification_id[:64]!r} in this project")
    return status.to_json()


@router.delete("/v1/{project_id}/notifications/{notification_id}")
async def withdraw(notification_id: str, project: AuthedProject, service: Service) -> dict[str, Any]:
    """Withdraw the deliveries not yet published; returns how many, and the status after."""
    async with service.db.write() as conn:
        withdrawn = await sending.withdraw(conn, project, notification_id, service.now_ms())
        status = await sending.notification_status(conn, project, notification_id)
    if withdrawn is None or status is None:
        raise ApiError(404, f"no notification {notification_id[:64]!r} in this project")
    return {"withdrawn_now": withdrawn, **status.to_json()}
