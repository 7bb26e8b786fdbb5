"""The web console (``/console``) and the JSON endpoints only it needs (``/v1/{projectId}/console/…``).

The page is static (see :mod:`wcnotify.notify.console`); everything it shows comes from the dapp API with the
credentials the user logged in with: the admin token for the project list and new projects, a project's id
and secret for the rest. The endpoints here take the same project secret (``AuthedProject``) and only read:

* ``GET …/console/did-status``: whether the app domain serves this project's did.json (a bounded fetch, see
  :mod:`wcnotify.notify.console.didcheck`);
* ``GET …/console/notifications?limit=``: the newest notifications with delivery counts by status;
* ``GET …/console/subscriber-history?bucket=day|hour&buckets=``: subscriber counts per UTC day or hour;
* ``GET …/console/webhook-outbox?limit=``: the project's webhooks (as ``GET …/webhooks`` lists them) and the
  newest rows of their outbox.

The page is served with a Content-Security-Policy that allows only this origin's own script, style and
fetches (no inline script, no third-party host), and is never cached with credentials in it: there are none,
they live in the tab's ``sessionStorage``.
"""

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response

from wcnotify.notify import webhooks
from wcnotify.notify.api.common import ApiError, AuthedProject, Service
from wcnotify.notify.console import ASSETS, asset, didcheck, queries

router = APIRouter()

NOTIFICATIONS_MAX = 100
OUTBOX_MAX = 200
HISTORY_BUCKETS_MAX = 366  # a year of days, or two weeks of hours and more

_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
_JSON_HEADERS = {"cache-control": "no-store"}


# --------------------------------------------------------------------------------------- the page


@router.get("/console", include_in_schema=False)
async def console_page() -> Response:
    return Response(asset("index.html"), media_type=ASSETS["index.html"], headers=_PAGE_HEADERS)


@router.get("/console/", include_in_schema=False)
async def console_slash() -> Response:
    return RedirectResponse("/console", status_code=308)


@router.get("/console/{name}", include_in_schema=False)
async def console_asset(name: str) -> Response:
    if name not in ASSETS or name == "index.html":
        raise ApiError(404, f"no console file {name[:64]!r}; the console is at /console")
    return Response(asset(name), media_type=ASSETS[name], headers=_PAGE_HEADERS)


# ----------------------------------------------------------------------------------- its endpoints


@router.get("/v1/{project_id}/console/did-status")
async def did_status(project: AuthedProject, service: Service) -> Response:
    """Fetch the app domain's did.json now and say whether it holds this project's keys."""
    result = await didcheck.check_did(project, timeout=didcheck.TIMEOUT, guard=service.net_guard)
    return _json({**result.to_json(), "checkedAt": service.now_ms()})


@router.get("/v1/{project_id}/console/notifications")
async def recent_notifications(
    project: AuthedProject, service: Service, limit: Annotated[int, Query(ge=1, le=NOTIFICATIONS_MAX)] = 20,
) -> Response:
    """The newest notifications, each as ``GET /v1/{projectId}/notifications/{id}`` describes one."""
    async with service.db.read(snapshot=True) as conn:
        found = await queries.recent_notifications(conn, project, limit=limit)
    return _json({"notifications": [status.to_json() for status in found]})


@router.get("/v1/{project_id}/console/subscriber-history")
async def subscriber_history(
    project: AuthedProject, service: Service, bucket: Literal["day", "hour"] = "day",
    buckets: Annotated[int, Query(ge=1, le=HISTORY_BUCKETS_MAX)] = 30,
) -> Response:
    """Subscribers per UTC day (or hour), oldest first: ``new`` in each bucket and the running ``total``."""
    async with service.db.read() as conn:
        history = await queries.subscriber_history(conn, project, bucket=bucket, buckets=buckets,
                                                   now_ms=service.now_ms())
    return _json(history.to_json())


@router.get("/v1/{project_id}/console/webhook-outbox")
async def webhook_outbox(
    project: AuthedProject, service: Service, limit: Annotated[int, Query(ge=1, le=OUTBOX_MAX)] = 50,
) -> Response:
    """The webhooks with their delivery counters and last error, and the newest outbox events."""
    async with service.db.read() as conn:
        hooks = await webhooks.list_webhooks(conn, project)
        events = await queries.webhook_outbox(conn, project, limit=limit)
    now_ms = service.now_ms()
    return _json({"webhooks": [w.to_json(now_ms) for w in hooks], "events": [e.to_json() for e in events]})


def _json(content: dict[str, Any]) -> Response:
    return Response(orjson.dumps(content), media_type="application/json", headers=_JSON_HEADERS)
