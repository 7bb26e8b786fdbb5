"""The dapp API of a notify server, from Python: :class:`NotifyDappClient` for one project (its secret),
:class:`NotifyAdminClient` for the operator (the admin token) to create projects and rotate their secrets.

Why it looks the way it does:

* Every refusal becomes the :mod:`wcnotify.dapp.errors` class that says what to do (wrong secret, bad field,
  rate limited with the seconds to wait, server down), so a dapp handles failures by kind, not by number.
* Sends always carry a ``notification_id`` (a random one unless the dapp chose it). The server keeps one
  notification per id, so a send retried after a timeout or a 503 never reaches a wallet twice, and the id
  is what :meth:`NotifyDappClient.notification_status` follows.
* Redirects are never followed: the secret goes to the URL the dapp configured and nowhere else.
* The secret is kept out of ``repr`` and every message; it travels only in the ``Authorization`` header.

A client owns its ``httpx.AsyncClient`` unless one is passed in (to share connections); close it with
``async with`` or :meth:`aclose`. ``timeout`` applies to every request, whichever client carries it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
import orjson

from wcnotify import spec
from wcnotify.dapp.errors import ServerError, ServerUnreachableError, error_for
from wcnotify.dapp.models import (
    AppConfig,
    BroadcastResult,
    CreatedWebhook,
    ImageUrls,
    Notification,
    NotificationStatus,
    NotificationType,
    ProjectCredentials,
    ProjectInfo,
    ProjectKeys,
    SendRequest,
    SendResult,
    Subscriber,
    SubscribersPage,
    WebhookInfo,
    WelcomeNotification,
    WithdrawResult,
)
from wcnotify.protocol.did import Account

__all__ = ["DEFAULT_TIMEOUT", "NotifyAdminClient", "NotifyDappClient"]

DEFAULT_TIMEOUT = 30.0  # seconds for a whole request; a send of 500 accounts is answered well within it

T = TypeVar("T")


def _segment(value: str) -> str:
    """A path segment: ids come from the dapp and may hold ``?``, ``#`` or ``%``."""
    return quote(value, safe="")


def _message(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    text = " ".join(response.text.split())[:200]
    return text or response.reason_phrase or "no explanation given"


class _ApiClient:
    """HTTP plumbing shared by both clients: one bearer token, JSON in and out, errors by kind."""

    def __init__(self, server_url: str, token: str, *, http: httpx.AsyncClient | None, timeout: float) -> None:
        self.server_url = server_url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None, auth: bool = True
    ) -> Any:
        """The decoded JSON answer (None for 204), or the :mod:`~wcnotify.dapp.errors` error of the refusal."""
        url = self.server_url + path
        headers = {"authorization": f"Bearer {self._token}"} if auth else {}
        content = None
        if json is not None:
            content = orjson.dumps(json)
            headers["content-type"] = "application/json"
        try:
            response = await self._http.request(
                method, url, content=content, params=params, headers=headers, timeout=self.timeout,
                follow_redirects=False,
            )
        except httpx.TimeoutException as exc:
            raise ServerUnreachableError(
                f"{method} {url}: no answer within {self.timeout:g} s ({type(exc).__name__}); retry, or raise timeout="
            ) from exc
        except httpx.HTTPError as exc:
            raise ServerUnreachableError(
                f"{method} {url} failed ({type(exc).__name__}: {exc}); is a notify server running at {self.server_url}?"
            ) from exc
        status = response.status_code
        if status >= 400:
            raise error_for(status, _message(response), response.headers.get("retry-after"))
        if status >= 300:
            raise ServerError(
                status, f"{method} {path} was redirected to {response.headers.get('location')!r}; configure the "
                "final URL as server_url (redirects are not followed, so credentials go nowhere else)",
            )
        if status == 204 or not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ServerError(
                status, f"{method} {path} answered with something other than JSON; is {self.server_url} a wcnotify "
                "notify server?",
            ) from None

    @staticmethod
    def _read(parse: Callable[[Any], T], data: Any, what: str) -> T:
        """``parse(data)``, or ServerError when the answer does not have the documented shape."""
        try:
            return parse(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ServerError(200, f"unexpected answer to {what} ({type(exc).__name__}: {exc}); is the server "
                                   "a wcnotify notify server of this version?") from exc


class NotifyDappClient(_ApiClient):
    """One project of a notify server's dapp API, authorized by the project secret.

    ``server_url`` is the notify server's base URL (``http://127.0.0.1:8082``); ``project_id`` and ``secret``
    come from ``wcnotify project create`` or :meth:`NotifyAdminClient.create_project`.
    """

    def __init__(
        self, server_url: str, project_id: str, secret: str, *, http: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(server_url, secret, http=http, timeout=timeout)
        self.project_id = project_id
        self._p = _segment(project_id)

    def __repr__(self) -> str:
        return f"NotifyDappClient({self.server_url!r}, project_id={self.project_id!r})"

    # ------------------------------------------------------------------------------- the project

    async def set_app_domain(self, app_domain: str) -> ProjectKeys:
        """Give the project its app domain (``host`` or ``host:port``): the server creates the project's keys
        on the first call and starts listening for wallets. Serve :meth:`did_document` at
        ``https://<app_domain>/.well-known/did.json`` (see :mod:`wcnotify.dapp.did_host`): wallets find the
        keys there. Calling again with the same domain returns the same keys; another project's domain is a
        :class:`~wcnotify.dapp.errors.ConflictError`."""
        data = await self._call("POST", f"/v1/{self._p}/subscribe-topic", json={"appDomain": app_domain})
        return self._read(ProjectKeys.from_json, data, "subscribe-topic")

    async def project(self) -> ProjectInfo:
        """The project's settings, app domain and keys."""
        return self._read(ProjectInfo.from_json, await self._call("GET", f"/v1/{self._p}/project"), "project")

    async def update_project(
        self, *, name: str | None = None, description: str | None = None, icons: Sequence[str] | None = None,
        listed: bool | None = None,
    ) -> ProjectInfo:
        """Change what wallets are shown, and whether the server's public app registry lists the app
        (``listed``), so wallets can find and subscribe to it without visiting it. Only arguments given
        change."""
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = name
        if description is not None:
            changes["description"] = description
        if icons is not None:
            changes["icons"] = list(icons)
        if listed is not None:
            changes["listed"] = listed
        data = await self._call("PATCH", f"/v1/{self._p}/project", json=changes)
        return self._read(ProjectInfo.from_json, data, "PATCH project")

    async def rotate_secret(self, grace_seconds: int = 0) -> str:
        """A new API secret for the project, returned once (the server keeps only its hash); from then on this
        client uses it. With ``grace_seconds`` (at most ``spec.NOTIFY_SECRET_GRACE_MAX``) the old secret keeps
        working that long, so the new one can be rolled out to every backend first; with 0 it stops at once.
        Only the current secret can rotate. If another rotation finished first, this one changes nothing and
        raises :class:`~wcnotify.dapp.errors.ConflictError`. Store the result before anything else: if the
        answer is lost (:class:`~wcnotify.dapp.errors.ServerUnreachableError`) the rotation may have happened,
        and only the admin token can rotate again (:meth:`NotifyAdminClient.rotate_project_secret`)."""
        data = await self._call("POST", f"/v1/{self._p}/secret/rotate", json={"grace_seconds": grace_seconds})
        secret = self._read(lambda d: str(d["secret"]), data, "POST secret/rotate")
        self._token = secret
        return secret

    async def did_document(self) -> dict[str, Any]:
        """The did:web document to serve at ``/.well-known/did.json`` of the app domain. Public: no secret is
        sent. :class:`~wcnotify.dapp.errors.NotFoundError` until :meth:`set_app_domain` was called."""
        data = await self._call("GET", f"/v1/{self._p}/did.json", auth=False)
        return self._read(lambda d: dict(d.items()), data, "did.json")

    async def app_config(self) -> AppConfig:
        """What wallets are told about the app (name, icons, notification types): public, as wallets read it."""
        data = await self._call("GET", "/w3i/v1/notify-config", params={"projectId": self.project_id}, auth=False)
        return self._read(AppConfig.from_json, data, "notify-config")

    async def mark_all_as_read(self) -> None:
        """Mark every notification of the project read in every subscriber's inbox."""
        await self._call("POST", f"/v1/{self._p}/mark-all-as-read")

    # ------------------------------------------------------------------------ notification types

    async def add_notification_type(
        self, name: str, description: str = "", image_urls: ImageUrls | None = None
    ) -> NotificationType:
        """A new notification type; wallets subscribe to types, and a notification names the type's ``id``."""
        urls = image_urls or ImageUrls()
        data = await self._call(
            "POST", f"/v1/{self._p}/notification-types",
            json={"name": name, "description": description, "imageUrls": urls.to_json()},
        )
        type_id = self._read(lambda d: str(d["id"]), data, "POST notification-types")
        return NotificationType(type_id, name, description, urls)

    async def notification_types(self) -> list[NotificationType]:
        data = await self._call("GET", f"/v1/{self._p}/notification-types")
        return self._read(lambda d: [NotificationType.from_json(t) for t in d], data, "notification-types")

    async def delete_notification_type(self, type_id: str) -> None:
        await self._call("DELETE", f"/v1/{self._p}/notification-types/{_segment(type_id)}")

    # ---------------------------------------------------------------------------------- sending

    async def send(
        self, notification: Notification, accounts: Iterable[str | Account], *, notification_id: str | None = None
    ) -> SendResult:
        """Queue ``notification`` for the subscribed ``accounts`` (CAIP-10, at most 500; any chain and case
        of an address reaches its subscriber). The result says, per account, whether it was queued, why not
        (``failed``), or that it is not subscribed (``not_found``). Delivery happens after the answer:
        follow it with :meth:`notification_status` or :meth:`wait_for_delivery`."""
        if isinstance(accounts, str):
            raise TypeError("accounts must be a list of accounts, not one string")
        return await self.send_many([SendRequest(notification, tuple(str(a) for a in accounts), notification_id)])

    async def send_many(self, requests: Sequence[SendRequest]) -> SendResult:
        """Several notifications in one request, all queued or none (500 accounts in all). A refused field
        is named with the request's index: ``1.notification.title``."""
        ids = tuple(r.notification_id or str(uuid.uuid4()) for r in requests)
        body = [
            {"notification_id": nid, "notification": r.notification.to_json(), "accounts": [str(a) for a in r.accounts]}
            for nid, r in zip(ids, requests, strict=True)
        ]
        data = await self._call("POST", f"/v1/{self._p}/notify", json=body)
        return self._read(lambda d: SendResult.from_json(ids, d), data, "notify")

    async def broadcast(self, notification: Notification, *, notification_id: str | None = None) -> BroadcastResult:
        """Queue ``notification`` for every subscriber of its type, however many: no paging, one request."""
        body = {"notification_id": notification_id or str(uuid.uuid4()), "notification": notification.to_json()}
        data = await self._call("POST", f"/v1/{self._p}/notify/broadcast", json=body)
        return self._read(BroadcastResult.from_json, data, "broadcast")

    async def notification_status(self, notification_id: str) -> NotificationStatus:
        data = await self._call("GET", f"/v1/{self._p}/notifications/{_segment(notification_id)}")
        return self._read(NotificationStatus.from_json, data, "notification status")

    async def wait_for_delivery(
        self, notification_id: str, *, timeout: float = 30.0, interval: float = 0.2
    ) -> NotificationStatus:
        """Poll the status until nothing is queued (each delivery published, failed or withdrawn): for a
        script or a test that wants the outcome. TimeoutError when deliveries are still queued after
        ``timeout`` seconds (the relay may be down: the server keeps retrying for a day)."""
        deadline = time.monotonic() + timeout
        while True:
            status = await self.notification_status(notification_id)
            if status.settled:
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(f"notification {notification_id!r}: {status.queued} of {status.total} deliveries "
                                   f"still queued after {timeout:g} s")
            await asyncio.sleep(interval)

    async def withdraw(self, notification_id: str) -> WithdrawResult:
        """Stop the deliveries not yet published (wallets that have it keep it); the id cannot be reused."""
        data = await self._call("DELETE", f"/v1/{self._p}/notifications/{_segment(notification_id)}")

        def parse(d: Any) -> WithdrawResult:
            return WithdrawResult(int(d["withdrawn_now"]), NotificationStatus.from_json(d))

        return self._read(parse, data, "withdraw")

    async def welcome_notification(self) -> WelcomeNotification | None:
        """The welcome notification's settings; None until it was set."""
        data = await self._call("GET", f"/v0/{self._p}/welcome-notification")
        return None if data is None else self._read(WelcomeNotification.from_json, data, "welcome-notification")

    async def set_welcome_notification(self, welcome: WelcomeNotification) -> None:
        """Set what a wallet's first subscription receives (when ``enabled`` and its type is subscribed)."""
        await self._call("POST", f"/v0/{self._p}/welcome-notification", json=welcome.to_json())

    # ------------------------------------------------------------------------------ subscribers

    async def lookup_subscribers(self, accounts: Iterable[str | Account]) -> dict[str, tuple[str, ...]]:
        """Which of ``accounts`` are subscribed: ``{account as the wallet subscribed with it: type ids}``.
        Any number of accounts: they are asked about 100 at a time (the server's limit per request)."""
        if isinstance(accounts, str):
            raise TypeError("accounts must be a list of accounts, not one string")
        wanted = [str(a) for a in accounts]
        found: dict[str, tuple[str, ...]] = {}
        step = spec.NOTIFY_SUBSCRIBERS_LOOKUP_MAX
        for start in range(0, len(wanted), step):
            data = await self._call("POST", f"/v1/{self._p}/subscribers", json={"accounts": wanted[start:start + step]})
            found |= self._read(
                lambda d: {str(k): tuple(str(t) for t in v["notification_types"]) for k, v in d.items()},
                data, "subscribers lookup",
            )
        return found

    async def subscribers_page(self, *, limit: int = 100, cursor: str | None = None) -> SubscribersPage:
        """One page of subscribers (``limit`` 1-1000), in a stable order: a subscriber present for the whole
        walk is seen exactly once, however many others come and go meanwhile."""
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        data = await self._call("GET", f"/v1/{self._p}/subscribers", params=params)
        return self._read(SubscribersPage.from_json, data, "subscribers")

    async def iter_subscribers(self, *, page_size: int = 100) -> AsyncIterator[Subscriber]:
        """Every subscriber, fetched a page at a time (so a large project never sits in memory whole)."""
        cursor: str | None = None
        while True:
            page = await self.subscribers_page(limit=page_size, cursor=cursor)
            for subscriber in page.subscribers:
                yield subscriber
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # --------------------------------------------------------------------------------- webhooks

    async def create_webhook(
        self, url: str, events: Iterable[spec.WebhookEvent | str] | None = None
    ) -> CreatedWebhook:
        """Have the server POST ``events`` (all of them when None) to ``url``, signed with the returned
        webhook's ``secret``: receive them with :mod:`wcnotify.dapp.webhooks`."""
        body: dict[str, Any] = {"url": url}
        if events is not None:
            body["events"] = [str(e) for e in events]
        data = await self._call("POST", f"/v1/{self._p}/webhooks", json=body)
        return self._read(CreatedWebhook.from_json, data, "POST webhooks")

    async def webhooks(self) -> list[WebhookInfo]:
        """The project's webhooks and their delivery state (never their secrets)."""
        data = await self._call("GET", f"/v1/{self._p}/webhooks")
        return self._read(lambda d: [WebhookInfo.from_json(w) for w in d], data, "webhooks")

    async def delete_webhook(self, webhook_id: str) -> None:
        """Delete the webhook and drop its pending events."""
        await self._call("DELETE", f"/v1/{self._p}/webhooks/{_segment(webhook_id)}")


class NotifyAdminClient(_ApiClient):
    """The operator's side: creates and lists projects with the server's admin token (``--admin-token``)."""

    def __init__(
        self, server_url: str, admin_token: str, *, http: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(server_url, admin_token, http=http, timeout=timeout)

    def __repr__(self) -> str:
        return f"NotifyAdminClient({self.server_url!r})"

    async def create_project(
        self, name: str, *, description: str = "", icons: Sequence[str] = ()
    ) -> ProjectCredentials:
        """A new project; its secret is in this answer only."""
        data = await self._call("POST", "/v1/projects", json={"name": name, "description": description,
                                                              "icons": list(icons)})
        return self._read(lambda d: ProjectCredentials(str(d["projectId"]), str(d["secret"])), data, "POST projects")

    async def list_projects(self) -> list[ProjectInfo]:
        data = await self._call("GET", "/v1/projects")
        return self._read(lambda d: [ProjectInfo.from_json(p) for p in d], data, "projects")

    async def rotate_project_secret(self, project_id: str, grace_seconds: int = 0) -> ProjectCredentials:
        """A new API secret for the project (the operator's way in when the dapp lost its secret, or it
        leaked). ``grace_seconds`` as for :meth:`NotifyDappClient.rotate_secret`."""
        data = await self._call("POST", f"/v1/{_segment(project_id)}/secret/rotate",
                                json={"grace_seconds": grace_seconds})
        return self._read(lambda d: ProjectCredentials(str(d["projectId"]), str(d["secret"])), data,
                          "POST secret/rotate")

    def dapp_client(self, credentials: ProjectCredentials) -> NotifyDappClient:
        """A client for the project, sharing this client's connections (close this one last)."""
        return NotifyDappClient(
            self.server_url, credentials.project_id, credentials.secret, http=self._http, timeout=self.timeout
        )
