"""``POST /v1/relay-webhook``: the relay's signed watch events, each a wallet request to handle.

The reference's contract (reference-server.md §1.2): 204 when handled (a wallet's mistake is answered to the
wallet, not to the relay), 422 when the event itself is bad (never retried), 500 for our own faults, so the
relay retries with backoff.
"""

import logging

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from wcnotify import spec
from wcnotify.notify.api.common import Service, error_response
from wcnotify.notify.handlers import RelayEvent, ServerFault
from wcnotify.notify.relay_link import WebhookError
from wcnotify.relay.client import RelayClientError

log = logging.getLogger("wcnotify.notify.api")
router = APIRouter()


@router.post(spec.NOTIFY_WEBHOOK_PATH, status_code=204)
async def relay_webhook(request: Request, service: Service) -> Response:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return error_response(422, "body is not JSON")
    try:
        evt = service.relay.verify_event(body)
    except WebhookError as exc:
        return error_response(422, str(exc))
    event = RelayEvent(evt["topic"], evt["message"], evt["tag"], int(evt.get("publishedAt") or 0))
    try:
        await service.process(event)
    except (ServerFault, RelayClientError, SQLAlchemyError) as exc:
        log.warning("webhook for %s on %s failed, the relay will retry: %s", evt["tag"], evt["topic"][:16], exc)
        return error_response(500, "Internal server error")
    return Response(status_code=204)
