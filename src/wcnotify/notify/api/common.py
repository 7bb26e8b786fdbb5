"""What every route module of the notify server's HTTP API shares: errors, body models, dependencies.

Errors are JSON ``{"error": "<what is wrong and what to do>"}`` with 401 (credentials), 404, 409, 413
(body too large), 422 (validation, naming the field), 429 (rate limited, with ``Retry-After``) or 503 (a
dependency is down; retry); nothing a client sends produces a 500.

Route modules do not use ``from __future__ import annotations``: FastAPI evaluates route annotations at
runtime. The service reaches routes through ``request.app.state.service`` (:func:`get_service`).
"""

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, field_validator

from wcnotify.notify import store
from wcnotify.notify.service import NotifyService
from wcnotify.notify.store import Project
from wcnotify.serving import bearer_token


class ApiError(Exception):
    """Raised by a route: becomes ``{"error": message}`` with ``status`` (and ``headers``)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def no_nul(value: str) -> str:
    """PostgreSQL text cannot hold U+0000: refuse it as a 422 here, not later as a database error."""
    if "\x00" in value:
        raise ValueError("may not contain NUL characters (\\u0000)")
    return value


def _strings_without_nul(value: Any) -> Any:
    if isinstance(value, str):
        no_nul(value)
    elif isinstance(value, list | tuple):
        for item in value:
            _strings_without_nul(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _strings_without_nul(key)
            _strings_without_nul(item)
    return value


class Body(BaseModel):
    """Request bodies: unknown fields are ignored (clients newer than us may send more); no string field,
    at any depth, may hold a NUL character."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_anywhere(cls, value: Any) -> Any:
        return _strings_without_nul(value)


def get_service(request: Request) -> NotifyService:
    service: NotifyService = request.app.state.service
    return service


Service = Annotated[NotifyService, Depends(get_service)]


async def admin(service: Service, authorization: Annotated[str | None, Header()] = None) -> None:
    token = bearer_token(authorization)
    if token is None or not hmac.compare_digest(token.encode(), service.config.admin_token.encode()):
        raise ApiError(401, "Unauthorized: send the admin token as 'Authorization: Bearer <token>'")


async def project_auth(
    project_id: str, service: Service, authorization: Annotated[str | None, Header()] = None
) -> Project:
    secret = bearer_token(authorization)
    if secret is None:
        raise ApiError(401, "Unauthorized: send the project secret as 'Authorization: Bearer <secret>'")
    async with service.db.read() as conn:
        project = await store.authenticate_project(conn, project_id, secret, now_ms=service.now_ms())
    if project is None:
        raise ApiError(401, "Invalid project id or secret")
    return project


@dataclass(frozen=True)
class ProjectCaller:
    """Who called a route that takes the project secret or the admin token (:func:`project_or_admin`)."""

    project: Project
    admin: bool  # the admin token
    current: bool  # the current secret (or the admin token); False: the previous one, in its grace period
    secret_hash: str  # the project's current secret hash, as read when the request was authorised


async def project_or_admin(
    project_id: str, service: Service, authorization: Annotated[str | None, Header()] = None
) -> ProjectCaller:
    token = bearer_token(authorization)
    if token is None:
        raise ApiError(
            401, "Unauthorized: send the project secret or the admin token as 'Authorization: Bearer <secret>'"
        )
    if hmac.compare_digest(token.encode(), service.config.admin_token.encode()):
        async with service.db.read() as conn:
            project = await store.project_by_public_id(conn, project_id)
            secret_hash = await store.current_secret_hash(conn, project) if project else None
        if project is None or secret_hash is None:
            raise ApiError(404, f"no project {project_id[:64]!r}")
        return ProjectCaller(project, admin=True, current=True, secret_hash=secret_hash)
    async with service.db.read() as conn:
        found = await store.match_secret(conn, project_id, token, now_ms=service.now_ms())
    if found is None:
        raise ApiError(401, "Invalid project id or secret")
    return ProjectCaller(found.project, admin=False, current=found.current, secret_hash=found.secret_hash)


async def public_project(project_id: str, service: Service) -> Project:
    async with service.db.read() as conn:
        project = await store.project_by_public_id(conn, project_id)
    if project is None:
        raise ApiError(404, f"no project {project_id[:64]!r}")
    return project


Admin = Depends(admin)
AuthedProject = Annotated[Project, Depends(project_auth)]
PublicProject = Annotated[Project, Depends(public_project)]
ProjectOrAdmin = Annotated[ProjectCaller, Depends(project_or_admin)]
