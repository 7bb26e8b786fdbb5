"""``POST /v1/relay-webhook``: the relay's signed watch events, each a wallet request to handle.

The reference's contract (reference-server.md §1.2): 204 when handled (a wallet's mistake is answered to the
wallet, not to the relay), 422 when the event itself is bad (never retried), 500 for our own faults, so the
relay retries with backoff. An event signed by another key than the relay's as we know it makes us fetch the
relay's key again (a relay restarted with a new key); while that fetch is spaced out, such an event gets 503,
so a relay's is retried rather than dropped.
"""

import logging

import httpx
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from wcnotify import spec
from wcnotify.notify.api.common import Service, error_response
from wcnotify.notify.handlers import RelayEvent, ServerFault
from wcnotify.notify.relay_link import UnknownSignerError, WebhookError
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
    except UnknownSignerError as exc:
        # the relay may have a new key: look it up (spaced out) and verify again
        try:
            changed = await service.relay.refresh_relay_key()
        except httpx.HTTPError as fetch_error:
            log.warning("could not fetch the relay's key (%s); the relay will retry the event", fetch_error)
            return error_response(500, "Internal server error")
        if changed is None:  # fetched a moment ago: the relay retries a 5xx later, when it may be fetched again
            return error_response(503, "the relay's key was checked a moment ago; retry shortly")
        if not changed:
            return error_response(422, str(exc))
        try:
            evt = service.relay.verify_event(body)
        except WebhookError as again:
            return error_response(422, str(again))
    except WebhookError as exc:
        return error_response(422, str(exc))
    event = RelayEvent(evt["topic"], evt["message"], evt["tag"], int(evt.get("publishedAt") or 0))
    try:
        await service.process(event)
    except (ServerFault, RelayClientError, SQLAlchemyError) as exc:
        log.warning("webhook for %s on %s failed, the relay will retry: %s", evt["tag"], evt["topic"][:16], exc)
        return error_response(500, "Internal server error")
    return Response(status_code=204)
