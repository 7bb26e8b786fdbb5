"""The public app registry, a project's own settings, and its welcome notification's settings.

* ``GET /v1/apps`` and ``GET /v1/apps/{appDomain}``: no auth. The apps that chose to be listed (and have an
  app domain), each with its did:web document and notification types inline, so a wallet can subscribe to
  an app it discovered here without fetching anything from the app's own site. WalletConnect's explorer
  plays this role for the public stack; it is closed, and a self-hosted server needs its own.
* ``PATCH /v1/{projectId}/project``: the project secret changes the name, description, icons and listing.
  The reference has no such endpoint (its projects live in WalletConnect Cloud).
* ``GET|POST /v0/{projectId}/welcome-notification``: the reference's paths and shapes, but the POST is
  validated (the reference never validates it, so a long title fails later in the database with a 500),
  and ``type`` must be one of the project's notification types. Sending it is the subscribe handler's job;
  it reads the settings with :func:`wcnotify.notify.directory.get_welcome`.

Route order matters for ``/v1/apps/{appDomain}``: it shares its shape with ``/v1/{projectId}/…`` routes, so
this router is included before them (project ids are never ``apps``).
"""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field, StrictBool

from wcnotify import spec
from wcnotify.notify import directory, store
from wcnotify.notify.api.common import ApiError, AuthedProject, Body, Service
from wcnotify.notify.api.projects import did_document, project_json
from wcnotify.notify.directory import CURSOR_APPS, CursorError
from wcnotify.notify.store import NotificationType, Project
from wcnotify.protocol.did import DidError, normalize_domain

router = APIRouter()


Icon = Annotated[str, Field(min_length=1, max_length=255)]


class ProjectPatch(Body):
    """Only the fields sent change; null is refused rather than guessed to mean "clear"."""

    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=1000)
    icons: list[Icon] | None = Field(default=None, max_length=10)
    listed: StrictBool | None = None


class WelcomeIn(Body):
    enabled: StrictBool
    type: uuid.UUID
    title: str = Field(min_length=1, max_length=spec.NOTIFY_TITLE_MAX)
    body: str = Field(min_length=1, max_length=spec.NOTIFY_BODY_MAX)
    url: str | None = Field(default=None, min_length=1, max_length=spec.NOTIFY_ICON_URL_MAX)


# ------------------------------------------------------------------------------------- registry


def app_json(project: Project, types: list[NotificationType], public_url: str) -> dict[str, Any]:
    return {
        "projectId": project.project_id, "name": project.name, "description": project.description,
        "icons": project.icons, "appDomain": project.app_domain, "didWeb": project.did_web,
        "didJson": did_document(project), "didJsonUrl": f"{public_url}/v1/{project.project_id}/did.json",
        "notificationTypes": [t.to_json() for t in types],
    }


@router.get("/v1/apps")
async def list_apps(
    service: Service,
    q: Annotated[str | None, Query(max_length=directory.SEARCH_MAX)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=directory.APPS_PAGE_MAX)] = directory.APPS_PAGE_DEFAULT,
) -> dict[str, Any]:
    after = None
    if cursor is not None:
        try:
            after = directory.decode_cursor(CURSOR_APPS, cursor)
        except CursorError:
            raise ApiError(422, "cursor: not a next_cursor returned by this endpoint; start without one") from None
    if q and "\x00" in q:
        raise ApiError(422, "q: may not contain NUL characters (\\u0000)")
    async with service.db.read() as conn:
        page, last = await directory.listed_apps(conn, search=q or None, after=after, limit=limit)
        types = await directory.types_of(conn, [p.id for p in page])
    return {
        "apps": [app_json(p, types[p.id], service.public_url) for p in page],
        "next_cursor": directory.encode_cursor(CURSOR_APPS, last) if last is not None else None,
    }


@router.get("/v1/apps/{app_domain}")
async def get_app(app_domain: str, service: Service) -> dict[str, Any]:
    try:
        domain = normalize_domain(app_domain)
    except DidError:
        domain = None
    async with service.db.read() as conn:
        project = await directory.listed_app(conn, domain) if domain else None
        if project is None:
            raise ApiError(404, f"no listed app at {app_domain[:253]!r}")
        types = await directory.types_of(conn, [project.id])
    return app_json(project, types[project.id], service.public_url)


# ------------------------------------------------------------------------------ project settings


@router.patch("/v1/{project_id}/project")
async def update_project(body: ProjectPatch, project: AuthedProject, service: Service) -> dict[str, Any]:
    for name in sorted(body.model_fields_set):
        if getattr(body, name) is None:
            raise ApiError(422, f"{name}: may not be null; leave it out to keep the current value")
    async with service.db.write() as conn:
        updated = await directory.update_project(
            conn, project, name=body.name, description=body.description, icons=body.icons, listed=body.listed
        )
    return project_json(updated)


# ---------------------------------------------------------------------------- welcome notification


@router.get("/v0/{project_id}/welcome-notification")
async def get_welcome(project: AuthedProject, service: Service) -> dict[str, Any] | None:
    async with service.db.read() as conn:
        return await directory.get_welcome(conn, project)


@router.post("/v0/{project_id}/welcome-notification", status_code=204)
async def set_welcome(body: WelcomeIn, project: AuthedProject, service: Service) -> Response:
    type_id = str(body.type)
    async with service.db.write() as conn:
        if type_id not in {t.id for t in await store.list_types(conn, project)}:
            raise ApiError(422, f"type: {type_id} is not a notification type of this project; "
                                "create it with POST /v1/{projectId}/notification-types or use one listed there")
        await directory.set_welcome(conn, project, {
            "enabled": body.enabled, "type": type_id, "title": body.title, "body": body.body, "url": body.url,
        })
    return Response(status_code=204)
