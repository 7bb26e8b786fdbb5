"""The notify server's HTTP API (FastAPI): dapp endpoints, discovery, did.json and the relay webhook.

Paths and shapes follow the reference notify-server where it has them (reference-server.md §2):
``POST /{projectId}/subscribe-topic`` → ``{subscribeKey, authenticationKey}``, ``GET /.well-known/did.json``,
``POST /v1/relay-webhook``. Beyond it: projects are created here (``POST /v1/projects`` with the admin
token) instead of in a closed registry, notification types are managed here, the explorer's
``/w3i/v1/notify-config`` is served for our own projects, and mark-all-as-read works.

This module does not use ``from __future__ import annotations``: FastAPI evaluates the route annotations,
and the dependencies they name are local to :func:`build_app`.

Errors are JSON ``{"error": "<what is wrong and what to do>"}`` with 401 (credentials), 404, 409, 413
(body too large) or 422 (validation, naming the field); nothing a client sends produces a 500.
"""

import hmac
import logging
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wcnotify import spec
from wcnotify.notify import store
from wcnotify.notify.handlers import RelayEvent, ServerFault
from wcnotify.notify.relay_link import WebhookError
from wcnotify.notify.store import DomainTakenError, Project
from wcnotify.protocol.did import DidError, build_did_document, normalize_domain
from wcnotify.relay.client import RelayClientError
from wcnotify.serving import bearer_token

if TYPE_CHECKING:
    from wcnotify.notify.server import NotifyService

log = logging.getLogger("wcnotify.notify.api")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# ------------------------------------------------------------------------------------------ bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class ProjectIn(_Body):
    name: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=1000)
    icons: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(default_factory=list, max_length=10)


class SubscribeTopicIn(_Body):
    appDomain: str = Field(min_length=1, max_length=spec.NOTIFY_DOMAIN_MAX)


class ImageUrls(_Body):
    sm: str | None = Field(default=None, max_length=255)
    md: str | None = Field(default=None, max_length=255)
    lg: str | None = Field(default=None, max_length=255)


class NotificationTypeIn(_Body):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=255)
    imageUrls: ImageUrls = Field(default_factory=ImageUrls)


# ------------------------------------------------------------------------------------ body limit


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
            await _error(413, f"request body is larger than {self.limit} bytes")(scope, receive, send)
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


# ------------------------------------------------------------------------------------------ the app


def build_app(service: "NotifyService") -> FastAPI:  # noqa: PLR0915 (FastAPI reads annotations at runtime)
    app = FastAPI(
        title="wcnotify notify server",
        description="Dapp API, discovery and relay webhook of a self-hosted WalletConnect Notify server.",
        version="1",
        lifespan=service.lifespan,
    )

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return _error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body",)) or "body"
        return _error(422, f"{loc}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(SQLAlchemyError)
    async def _database(_request: Request, exc: SQLAlchemyError) -> Response:
        log.error("database error: %s", exc)
        return _error(503, "the database is unavailable; retry shortly")

    async def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        token = bearer_token(authorization)
        if token is None or not hmac.compare_digest(token.encode(), service.config.admin_token.encode()):
            raise ApiError(401, "Unauthorized: send the admin token as 'Authorization: Bearer <token>'")

    async def project_auth(project_id: str, authorization: Annotated[str | None, Header()] = None) -> Project:
        secret = bearer_token(authorization)
        if secret is None:
            raise ApiError(401, "Unauthorized: send the project secret as 'Authorization: Bearer <secret>'")
        async with service.db.read() as conn:
            project = await store.authenticate_project(conn, project_id, secret)
        if project is None:
            raise ApiError(401, "Invalid project id or secret")
        return project

    async def public_project(project_id: str) -> Project:
        async with service.db.read() as conn:
            project = await store.project_by_public_id(conn, project_id)
        if project is None:
            raise ApiError(404, f"no project {project_id[:64]!r}")
        return project

    # -------------------------------------------------------------------------------- service

    @app.get("/health", response_class=PlainTextResponse)
    async def health() -> str:
        return f"OK, wcnotify notify server; relay link {'up' if service.relay_ready.is_set() else 'pending'}"

    @app.get(spec.DID_JSON_PATH)
    async def server_did() -> Response:
        return Response(orjson.dumps(service.identity.did_document(service.public_url)), media_type="application/json")

    # ------------------------------------------------------------------------------- projects

    @app.post("/v1/projects", status_code=201, dependencies=[Depends(admin)])
    async def create_project(body: ProjectIn) -> dict[str, str]:
        async with service.db.write() as conn:
            project, secret = await store.create_project(
                conn, name=body.name, description=body.description, icons=body.icons, now_ms=service.now_ms()
            )
        return {"projectId": project.project_id, "secret": secret}

    @app.get("/v1/projects", dependencies=[Depends(admin)])
    async def list_projects() -> list[dict[str, Any]]:
        async with service.db.read() as conn:
            return [_project_json(p) for p in await store.list_projects(conn)]

    @app.get("/v1/{project_id}/project")
    async def get_project(project: Annotated[Project, Depends(project_auth)]) -> dict[str, Any]:
        return _project_json(project)

    async def subscribe_topic(
        body: SubscribeTopicIn, project: Annotated[Project, Depends(project_auth)]
    ) -> dict[str, str]:
        try:
            domain = normalize_domain(body.appDomain).lower()
        except DidError:
            raise ApiError(422, "appDomain: not a valid domain (host, or host:port)") from None
        try:
            async with service.db.write() as conn:
                project = await store.set_app_domain(conn, project, domain)
        except DomainTakenError:
            raise ApiError(409, "App domain in-use by another project") from None
        assert project.topic and project.subscribe_public and project.authentication_public
        try:
            await service.relay.subscribe([project.topic])
        except RelayClientError as exc:
            raise ApiError(
                503, f"the relay is unreachable, so the project topic is not subscribed yet; retry: {exc}"
            ) from exc
        return {"subscribeKey": project.subscribe_public, "authenticationKey": project.authentication_public}

    app.post("/{project_id}/subscribe-topic")(subscribe_topic)
    app.post("/v1/{project_id}/subscribe-topic")(subscribe_topic)

    @app.get("/v1/{project_id}/did.json")
    async def dapp_did(project: Annotated[Project, Depends(public_project)]) -> Response:
        if not project.has_keys:
            raise ApiError(404, "the project has no app domain yet: POST /{projectId}/subscribe-topic first")
        assert project.app_domain and project.subscribe_public and project.authentication_public
        document = build_did_document(
            project.app_domain, bytes.fromhex(project.subscribe_public), bytes.fromhex(project.authentication_public)
        )
        return Response(orjson.dumps(document), media_type="application/json")

    # --------------------------------------------------------------------- notification types

    @app.post("/v1/{project_id}/notification-types", status_code=201)
    async def add_type(body: NotificationTypeIn, project: Annotated[Project, Depends(project_auth)]) -> dict[str, str]:
        urls = {k: v for k, v in body.imageUrls.model_dump().items() if v}
        async with service.db.write() as conn:
            created = await store.add_type(
                conn, project, name=body.name, description=body.description, image_urls=urls, now_ms=service.now_ms()
            )
        if created is None:
            raise ApiError(409, f"the project already has a notification type named {body.name!r}")
        return {"id": created.id}

    @app.get("/v1/{project_id}/notification-types")
    async def list_types(project: Annotated[Project, Depends(project_auth)]) -> list[dict[str, Any]]:
        async with service.db.read() as conn:
            return [t.to_json() for t in await store.list_types(conn, project)]

    @app.delete("/v1/{project_id}/notification-types/{type_id}", status_code=204)
    async def delete_type(type_id: str, project: Annotated[Project, Depends(project_auth)]) -> Response:
        async with service.db.write() as conn:
            found = await store.delete_type(conn, project, type_id)
        if not found:
            raise ApiError(404, f"no notification type {type_id[:64]!r} in this project")
        return Response(status_code=204)

    @app.get("/w3i/v1/notify-config")
    async def notify_config(appDomain: str | None = None, projectId: str | None = None) -> dict[str, Any]:
        """The explorer's shape, so wallets (and the JS client, pointed here) learn an app's types."""
        async with service.db.read() as conn:
            project = None
            if appDomain:
                project = await store.project_by_domain(conn, appDomain)
            if project is None and projectId:
                project = await store.project_by_public_id(conn, projectId)
            if project is None:
                raise ApiError(404, "no app with that appDomain or projectId")
            types = await store.list_types(conn, project)
        return {
            "data": {
                "id": project.project_id, "name": project.name, "description": project.description,
                "appDomain": project.app_domain, "icons": project.icons,
                "image_url": _image_urls(project.icons),
                "notificationTypes": [t.to_json() for t in types],
            }
        }

    # ------------------------------------------------------------------------------ read state

    async def mark_all_as_read(project: Annotated[Project, Depends(project_auth)]) -> Response:
        async with service.db.write() as conn:
            await store.mark_all_read_for_project(conn, project)
        return Response(status_code=204)

    app.post("/v1/{project_id}/mark-all-as-read", status_code=204)(mark_all_as_read)
    app.get("/v1/{project_id}/mark-all-as-read", status_code=204, include_in_schema=False)(mark_all_as_read)

    # ------------------------------------------------------------------------------ the relay

    @app.post(spec.NOTIFY_WEBHOOK_PATH, status_code=204)
    async def relay_webhook(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(422, "body is not JSON")
        try:
            evt = service.relay.verify_event(body)
        except WebhookError as exc:
            return _error(422, str(exc))
        event = RelayEvent(evt["topic"], evt["message"], evt["tag"], int(evt.get("publishedAt") or 0))
        try:
            await service.process(event)
        except (ServerFault, RelayClientError, SQLAlchemyError) as exc:
            log.warning("webhook for %s on %s failed, the relay will retry: %s", evt["tag"], evt["topic"][:16], exc)
            return _error(500, "Internal server error")
        return Response(status_code=204)

    return app


def _image_urls(icons: list[str]) -> dict[str, str]:
    return {size: icons[0] for size in ("sm", "md", "lg")} if icons else {}


def _project_json(project: Project) -> dict[str, Any]:
    return {
        "projectId": project.project_id, "name": project.name, "description": project.description,
        "icons": project.icons, "appDomain": project.app_domain,
        "subscribeKey": project.subscribe_public, "authenticationKey": project.authentication_public,
    }
