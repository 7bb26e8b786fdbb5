"""Projects, their app domain and keys, did.json documents, notification types and read state.

Paths and shapes follow the reference notify-server where it has them (reference-server.md §2):
``POST /{projectId}/subscribe-topic`` → ``{subscribeKey, authenticationKey}``, ``GET /.well-known/did.json``.
Beyond it: projects are created here (``POST /v1/projects`` with the admin token) instead of in a closed
registry, notification types are managed here, the explorer's ``/w3i/v1/notify-config`` is served for our
own projects, and mark-all-as-read works (the reference's is a no-op).
"""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from pydantic import ConfigDict, Field

from wcnotify import spec
from wcnotify.notify import store
from wcnotify.notify.api.common import (
    Admin,
    ApiError,
    AuthedProject,
    Body,
    ProjectOrAdmin,
    PublicProject,
    Service,
)
from wcnotify.notify.store import DomainTakenError, Project
from wcnotify.protocol.did import DidError, build_did_document, normalize_domain
from wcnotify.relay.client import RelayClientError

router = APIRouter()


class ProjectIn(Body):
    name: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=1000)
    icons: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(default_factory=list, max_length=10)


class RotateSecretIn(Body):
    # unknown fields are refused here, unlike other bodies: a misspelt "grace_seconds" must not silently
    # become a rotation that ends the old secret at once
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(default=0, ge=0, le=spec.NOTIFY_SECRET_GRACE_MAX, strict=True)


class SubscribeTopicIn(Body):
    appDomain: str = Field(min_length=1, max_length=spec.NOTIFY_DOMAIN_MAX)


class ImageUrls(Body):
    sm: str | None = Field(default=None, max_length=255)
    md: str | None = Field(default=None, max_length=255)
    lg: str | None = Field(default=None, max_length=255)


class NotificationTypeIn(Body):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=255)
    imageUrls: ImageUrls = Field(default_factory=ImageUrls)


# ------------------------------------------------------------------------------------ service


@router.get("/health", response_class=PlainTextResponse)
async def health(service: Service) -> str:
    return f"OK, wcnotify notify server; relay link {'up' if service.relay_ready.is_set() else 'pending'}"


@router.get(spec.DID_JSON_PATH)
async def server_did(service: Service) -> Response:
    return Response(orjson.dumps(service.identity.did_document(service.public_url)), media_type="application/json")


# ----------------------------------------------------------------------------------- projects


@router.post("/v1/projects", status_code=201, dependencies=[Admin])
async def create_project(body: ProjectIn, service: Service) -> dict[str, str]:
    async with service.db.write() as conn:
        project, secret = await store.create_project(
            conn, name=body.name, description=body.description, icons=body.icons, now_ms=service.now_ms()
        )
    return {"projectId": project.project_id, "secret": secret}


@router.get("/v1/projects", dependencies=[Admin])
async def list_projects(service: Service) -> list[dict[str, Any]]:
    async with service.db.read() as conn:
        return [project_json(p) for p in await store.list_projects(conn)]


@router.get("/v1/{project_id}/project")
async def get_project(project: AuthedProject) -> dict[str, Any]:
    return project_json(project)


@router.post("/v1/{project_id}/secret/rotate")
async def rotate_secret(
    caller: ProjectOrAdmin, service: Service, body: RotateSecretIn | None = None
) -> dict[str, Any]:
    """A new API secret, shown in this answer only (only its hash is stored). With ``grace_seconds`` the
    replaced secret keeps working until ``previousSecretExpiresAt`` (Unix ms); without, it stops at once.
    Takes the current project secret or the admin token; of concurrent rotations one wins, the others get 409."""
    grace_seconds = body.grace_seconds if body is not None else 0
    if not caller.current:
        raise ApiError(
            409, "this secret was already rotated: it is the previous one, accepted until its grace period ends, "
            "but it cannot rotate; rotate with the current secret or the admin token",
        )
    async with service.db.write() as conn:
        rotated = await store.rotate_secret(
            conn, caller.project, expected_hash=caller.secret_hash, grace_ms=grace_seconds * 1000,
            now_ms=service.now_ms(),
        )
    if rotated is None:
        raise ApiError(
            409, "another rotation of this project's secret finished first; nothing changed: use the secret it "
            "returned (rotate again with it, or with the admin token, if you need another)",
        )
    secret, expires_at = rotated
    return {"projectId": caller.project.project_id, "secret": secret, "previousSecretExpiresAt": expires_at}


async def subscribe_topic(body: SubscribeTopicIn, project: AuthedProject, service: Service) -> dict[str, str]:
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


router.post("/{project_id}/subscribe-topic")(subscribe_topic)
router.post("/v1/{project_id}/subscribe-topic")(subscribe_topic)


@router.get("/v1/{project_id}/did.json")
async def dapp_did(project: PublicProject) -> Response:
    if not project.has_keys:
        raise ApiError(404, "the project has no app domain yet: POST /{projectId}/subscribe-topic first")
    return Response(orjson.dumps(did_document(project)), media_type="application/json")


# ------------------------------------------------------------------------ notification types


@router.post("/v1/{project_id}/notification-types", status_code=201)
async def add_type(body: NotificationTypeIn, project: AuthedProject, service: Service) -> dict[str, str]:
    urls = {k: v for k, v in body.imageUrls.model_dump().items() if v}
    async with service.db.write() as conn:
        created = await store.add_type(
            conn, project, name=body.name, description=body.description, image_urls=urls, now_ms=service.now_ms()
        )
    if created is None:
        raise ApiError(409, f"the project already has a notification type named {body.name!r}")
    return {"id": created.id}


@router.get("/v1/{project_id}/notification-types")
async def list_types(project: AuthedProject, service: Service) -> list[dict[str, Any]]:
    async with service.db.read() as conn:
        return [t.to_json() for t in await store.list_types(conn, project)]


@router.delete("/v1/{project_id}/notification-types/{type_id}", status_code=204)
async def delete_type(type_id: str, project: AuthedProject, service: Service) -> Response:
    async with service.db.write() as conn:
        found = await store.delete_type(conn, project, type_id)
    if not found:
        raise ApiError(404, f"no notification type {type_id[:64]!r} in this project")
    return Response(status_code=204)


@router.get("/w3i/v1/notify-config")
async def notify_config(service: Service, appDomain: str | None = None, projectId: str | None = None) -> dict[str, Any]:
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
            "image_url": image_urls(project.icons),
            "notificationTypes": [t.to_json() for t in types],
        }
    }


# -------------------------------------------------------------------------------- read state


async def mark_all_as_read(project: AuthedProject, service: Service) -> Response:
    async with service.db.write() as conn:
        await store.mark_all_read_for_project(conn, project)
    return Response(status_code=204)


router.post("/v1/{project_id}/mark-all-as-read", status_code=204)(mark_all_as_read)
router.get("/v1/{project_id}/mark-all-as-read", status_code=204, include_in_schema=False)(mark_all_as_read)


# ----------------------------------------------------------------------------------- helpers


def did_document(project: Project) -> dict[str, Any]:
    """The did:web document the dapp serves at ``https://{app_domain}/.well-known/did.json``."""
    assert project.app_domain and project.subscribe_public and project.authentication_public
    return build_did_document(
        project.app_domain, bytes.fromhex(project.subscribe_public), bytes.fromhex(project.authentication_public)
    )


def image_urls(icons: list[str]) -> dict[str, str]:
    return {size: icons[0] for size in ("sm", "md", "lg")} if icons else {}


def project_json(project: Project) -> dict[str, Any]:
    return {
        "projectId": project.project_id, "name": project.name, "description": project.description,
        "icons": project.icons, "appDomain": project.app_domain,
        "subscribeKey": project.subscribe_public, "authenticationKey": project.authentication_public,
        "listed": project.listed,
    }
