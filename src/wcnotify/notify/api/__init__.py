"""The notify server's HTTP API (FastAPI): one router per area, assembled by :func:`build_app`.

* :mod:`.projects`: projects, app domain and keys, did.json, notification types, read state;
* :mod:`.relay`: the relay's webhook (wallet requests);
* :mod:`.sending`: /notify, broadcast, a notification's status, withdrawal;
* :mod:`.subscribers`: who is subscribed (lookup, paged list, the v0 list);
* :mod:`.registry`: the public app registry, project settings, welcome notification settings;
* :mod:`.webhooks`: webhooks to dapps (subscribed, updated, unsubscribed);
* :mod:`.metrics`: Prometheus ``/metrics`` (the OpenAPI description is FastAPI's ``/openapi.json`` and ``/docs``).
* :mod:`.console`: the web console at ``/console`` and its read-only ``/v1/{projectId}/console/…`` endpoints.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wcnotify.notify.api import console, metrics, projects, registry, relay, sending, subscribers, webhooks
from wcnotify.notify.api.common import ApiError, error_response
from wcnotify.notify.metrics import HttpMetrics
from wcnotify.notify.service import NotifyService

__all__ = ["ApiError", "BodyLimit", "build_app"]

log = logging.getLogger("wcnotify.notify.api")


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes with 413, whether or not Content-Length says so."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await error_response(413, f"request body is larger than {self.limit} bytes")(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise ApiError(413, f"request body is larger than {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


def build_app(service: NotifyService) -> FastAPI:
    app = FastAPI(
        title="wcnotify notify server",
        description="Dapp API, discovery and relay webhook of a self-hosted WalletConnect Notify server.",
        version="1",
        lifespan=service.lifespan,
    )
    app.state.service = service
    app.add_middleware(HttpMetrics, metrics=service.metrics)  # requests by route template, for /metrics

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        parts = list(first.get("loc", ()))
        if parts and parts[0] in ("body", "query", "path", "header"):  # where it was, not which field
            parts = parts[1:] or parts
        loc = ".".join(str(p) for p in parts) or "body"
        return error_response(422, f"{loc}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(SQLAlchemyError)
    async def _database(_request: Request, exc: SQLAlchemyError) -> Response:
        log.error("database error: %s", exc)
        return error_response(503, "the database is unavailable; retry shortly")

    # registry first: /v1/apps/{appDomain}; console before /{project_id}/… (GET /console/subscribers is a file)
    for module in (registry, console, projects, relay, sending, subscribers, webhooks, metrics):
        app.include_router(module.router)
    return app
