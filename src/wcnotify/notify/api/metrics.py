"""``GET /metrics``: Prometheus exposition of this process (:mod:`wcnotify.notify.metrics`).

The reference serves its metrics on a separate private port. Here they share the API's port, so by default
they need the admin token (``Authorization: Bearer <admin token>``; Prometheus sends it with
``authorization: {credentials: …}`` in its scrape config): the queue depth and per-route traffic say a lot
about a deployment's users. A deployment whose port is private anyway sets ``metrics_public``
(``wcnotify server --metrics-public``) to scrape without a token.

The OpenAPI description of every route is at ``/openapi.json`` and browsable at ``/docs`` (FastAPI's).
"""

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from wcnotify.notify.api.common import Service, admin

router = APIRouter()


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(service: Service, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Prometheus metrics of this process: deliveries, publish latency, queue depth, webhook backlog, HTTP."""
    if not service.config.metrics_public:
        await admin(service, authorization)
    return Response(await service.metrics.render(service.db), media_type=CONTENT_TYPE_LATEST)
