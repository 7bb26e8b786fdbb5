"""Who is subscribed to a project: look accounts up, page through all of them, and the v0 list.

``POST /v1/{projectId}/subscribers`` follows the reference (reference-server.md §2.2): up to 100 CAIP-10
accounts in, ``{"<stored account>": {"notification_types": [...]}}`` out for those subscribed. Two things
differ on purpose: accounts match whatever the case of the address (the reference refuses lowercase
addresses, though a lowercase address names the same account), and a bad account is a JSON 422 naming
its index instead of axum's plain-text deserialization error.

``GET /v1/{projectId}/subscribers`` is ours: the reference only has the v0 list, which returns every
subscriber in one response. Here a dapp pages with ``cursor``/``limit`` (keyset paging, see
:mod:`wcnotify.notify.directory`), and each entry carries its scope and when it subscribed.

``GET /{projectId}/subscribers`` (v0) keeps the reference's shape, a bare JSON array of stored accounts, for
clients written against it. It is deprecated (``Deprecation``/``Link`` headers point to the v1 list) and
is streamed page by page, so a large project never sits in memory whole; a database failure in the middle
cuts the response short (invalid JSON) rather than returning a partial list that looks complete.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import Field

from wcnotify import spec
from wcnotify.notify import directory
from wcnotify.notify.api.common import ApiError, AuthedProject, Body, Service
from wcnotify.notify.directory import CURSOR_SUBSCRIBERS, CursorError
from wcnotify.notify.service import NotifyService
from wcnotify.notify.store import Project, address_of
from wcnotify.protocol.did import Account, DidError

router = APIRouter()

V0_PAGE = 1000  # rows per database round trip while streaming the v0 list


class LookupIn(Body):
    accounts: list[str] = Field(min_length=1, max_length=spec.NOTIFY_SUBSCRIBERS_LOOKUP_MAX)


@router.post("/v1/{project_id}/subscribers")
async def lookup_subscribers(body: LookupIn, project: AuthedProject, service: Service) -> dict[str, Any]:
    addresses = []
    for index, value in enumerate(body.accounts):
        try:
            addresses.append(address_of(Account.parse(value)))
        except DidError as exc:
            raise ApiError(422, f"accounts.{index}: {exc}") from None
    async with service.db.read() as conn:
        found = await directory.subscribers_at(conn, project, addresses)
    return {entry.account: {"notification_types": list(entry.notification_types)} for entry in found}


@router.get("/v1/{project_id}/subscribers")
async def list_subscribers(
    project: AuthedProject,
    service: Service,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=directory.PAGE_MAX)] = directory.PAGE_DEFAULT,
) -> dict[str, Any]:
    after = None
    if cursor is not None:
        try:
            after = directory.decode_cursor(CURSOR_SUBSCRIBERS, cursor)
        except CursorError:
            raise ApiError(422, "cursor: not a next_cursor returned by this endpoint; start without one") from None
    async with service.db.read() as conn:
        page, last = await directory.subscribers_page(conn, project, after=after, limit=limit)
    return {
        "subscribers": [entry.to_json() for entry in page],
        "next_cursor": directory.encode_cursor(CURSOR_SUBSCRIBERS, last) if last is not None else None,
    }


@router.get("/{project_id}/subscribers", deprecated=True)
async def list_subscribers_v0(project: AuthedProject, service: Service) -> StreamingResponse:
    """Every stored account as one JSON array (the reference's shape); use ``GET /v1/{projectId}/subscribers``."""
    # the first page is read before the response starts, so a database that is down gives a clean 503
    async with service.db.read() as conn:
        first = await directory.subscriber_accounts_page(conn, project, after=None, limit=V0_PAGE)
    headers = {"Deprecation": "true", "Link": f'</v1/{project.project_id}/subscribers>; rel="successor-version"'}
    return StreamingResponse(_v0_body(service, project, first), media_type="application/json", headers=headers)


async def _v0_body(service: NotifyService, project: Project, page: list[tuple[str, str]]) -> AsyncIterator[bytes]:
    yield b"["
    separator = b""
    while page:
        yield separator + b",".join(orjson.dumps(account) for _, account in page)
        separator = b","
        if len(page) < V0_PAGE:
            break
        async with service.db.read() as conn:  # one short read per page: no connection held while sending
            page = await directory.subscriber_accounts_page(conn, project, after=page[-1][0], limit=V0_PAGE)
    yield b"]"
