"""Webhooks to dapps: ``POST``/``GET /v1/{projectId}/webhooks``, ``DELETE /v1/{projectId}/webhooks/{id}``.

The reference has no such API; shapes are ours (docs/webhooks.md). The secret is in the ``POST`` answer
only: it is the HMAC key the dapp verifies with, and a listing that repeats it would spread it to every
dashboard and log that shows the list. A dapp that lost it deletes the webhook and creates another.
Unless the server allows private URLs, a URL whose host is a non-public IP literal or ``localhost`` is
refused with 422 (notify/netguard.py; names are checked again at every delivery).
"""

from typing import Annotated, Any

import httpx
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field

from wcnotify import spec
from wcnotify.notify import netguard, webhooks
from wcnotify.notify.api.common import ApiError, AuthedProject, Body, Service

router = APIRouter()


class WebhookIn(Body):
    url: str = Field(min_length=1, max_length=spec.WEBHOOK_URL_MAX)
    events: list[Annotated[str, Field(max_length=32)]] | None = Field(default=None, max_length=16)


@router.post("/v1/{project_id}/webhooks", status_code=201)
async def create_webhook(body: WebhookIn, project: AuthedProject, service: Service) -> dict[str, Any]:
    try:
        url = webhooks.check_url(body.url)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    if not service.config.allow_private_urls:
        # an IP literal or localhost is refused here; a name is checked at each delivery (netguard.py)
        refused = netguard.refused_literal(httpx.URL(url).host)
        if refused is not None:
            raise ApiError(422, f"url: {refused}; {netguard.OPTION_HINT}")
    try:
        events = webhooks.check_events(body.events)
    except ValueError as exc:
        raise ApiError(422, f"events: {exc}") from None
    try:
        async with service.db.write() as conn:
            created, secret = await webhooks.create_webhook(
                conn, project, url=url, events=events, now_ms=service.now_ms()
            )
    except webhooks.WebhookLimitError:
        raise ApiError(
            409, f"the project already has {spec.WEBHOOK_MAX_PER_PROJECT} webhooks, the most allowed; delete one first"
        ) from None
    return {"id": created.id, "url": created.url, "events": list(created.events), "secret": secret,
            "created_at": created.created_at}


@router.get("/v1/{project_id}/webhooks")
async def list_webhooks(project: AuthedProject, service: Service) -> list[dict[str, Any]]:
    async with service.db.read() as conn:
        found = await webhooks.list_webhooks(conn, project)
    now_ms = service.now_ms()
    return [w.to_json(now_ms) for w in found]


@router.delete("/v1/{project_id}/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: str, project: AuthedProject, service: Service) -> Response:
    async with service.db.write() as conn:
        found = await webhooks.delete_webhook(conn, project, webhook_id)
    if not found:
        raise ApiError(404, f"no webhook {webhook_id[:64]!r} in this project")
    return Response(status_code=204)
