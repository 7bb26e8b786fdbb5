"""Is the app's did.json published where wallets look for it, and does it hold this project's keys?

Wallets resolve ``did:web:<app domain>`` to ``https://<app domain>/.well-known/did.json`` (``http://`` for
the host ``localhost`` only, see ``protocol.did.domain_scheme``) and take the subscribe and authentication
keys from it; a missing or stale document is the usual reason a dapp's subscribe button does nothing. The
console asks the server to look, because a browser page cannot read another origin's document without CORS
headers the dapp's site may not send.

The fetch is done the way a careful resolver does it and no further: one GET, no redirects followed, no proxy
from the environment, a total time limit, at most ``MAX_DOCUMENT`` bytes read. Plain http is used only for
``localhost`` itself; the caller learns the outcome and a hint, never the body, so the check tells nothing
about a host beyond whether it serves this project's did.json. Unless the server allows private URLs, the
domain is resolved first and a domain that is, or resolves to, an address that is not public (loopback,
private, link-local…: notify/netguard.py) is reported unreachable without connecting to it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from wcnotify.notify.netguard import NetGuard, NonPublicAddressError, pinned
from wcnotify.notify.store import Project
from wcnotify.protocol.did import DidError, did_web, did_web_url, parse_did_document

MAX_DOCUMENT = 64 * 1024  # bytes; a did.json is well under 2 KiB
TIMEOUT = 5.0  # seconds for the whole check (connect, headers and body)

# outcomes, from worst to best; "ok" is the only good one
NO_DOMAIN = "no_domain"  # the project has no app domain yet
UNREACHABLE = "unreachable"  # no connection, or no answer in time
HTTP_ERROR = "http_error"  # an answer other than 200 (redirects included: they are not followed)
INVALID = "invalid"  # 200, but not a did:web document for this domain
MISMATCH = "mismatch"  # a valid document with other keys (an old project, or another server's)
OK = "ok"


@dataclass(frozen=True)
class DidCheck:
    state: str
    detail: str  # what was found and what to do
    app_domain: str | None = None
    url: str | None = None
    http_status: int | None = None
    elapsed_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "ok": self.state == OK, "detail": self.detail, "appDomain": self.app_domain,
                "url": self.url, "httpStatus": self.http_status, "elapsedMs": self.elapsed_ms}


def _client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False,
                             headers={"user-agent": "wcnotify-console-did-check/1", "accept": "application/json"})


async def check_did(
    project: Project, *, timeout: float = TIMEOUT, http: httpx.AsyncClient | None = None,
    guard: NetGuard | None = None,
) -> DidCheck:
    """Fetch and compare the project's published did.json (``http`` replaces the client in tests; ``guard``
    says which hosts may be fetched from, by default public addresses only)."""
    domain = project.app_domain
    if domain is None or project.subscribe_public is None or project.authentication_public is None:
        return DidCheck(NO_DOMAIN, "the project has no app domain yet: set one (POST /{projectId}/subscribe-topic), "
                        "then publish the did.json it gives at that domain")
    url = did_web_url(domain)
    started = time.monotonic()
    guard = guard if guard is not None else NetGuard()
    client = http or _client(timeout)
    try:
        async with asyncio.timeout(timeout):
            target = httpx.URL(url)
            address = await guard.check(target.host, target.port or (443 if target.scheme == "https" else 80))
        status, body = await _fetch(client, pinned(target, address), max(timeout - (time.monotonic() - started), 0.001))
    except NonPublicAddressError as exc:
        return DidCheck(UNREACHABLE, f"not fetched: {exc}", domain, url, elapsed_ms=_ms(started))
    except (TimeoutError, httpx.TimeoutException):
        return DidCheck(UNREACHABLE, f"no answer from {url} within {timeout:g} s; is the app's site up?",
                        domain, url, elapsed_ms=_ms(started))
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return DidCheck(UNREACHABLE, f"cannot fetch {url} ({reason[:200]}); is the app's site up, and is the "
                        "domain right?", domain, url, elapsed_ms=_ms(started))
    finally:
        if http is None:
            await client.aclose()
    return _judge(project, domain, url, status=status, body=body, elapsed=_ms(started))


async def _fetch(
    client: httpx.AsyncClient, request: tuple[httpx.URL, dict[str, str], dict[str, Any]], timeout: float
) -> tuple[int, bytes | None]:
    """The status and, for a 200, the body (None when larger than MAX_DOCUMENT); ``request`` is what
    :func:`~wcnotify.notify.netguard.pinned` made (the URL, the Host header, the TLS server name)."""
    url, headers, extensions = request
    async with asyncio.timeout(timeout), client.stream("GET", url, headers=headers, extensions=extensions) as response:
        if response.status_code != 200:
            return response.status_code, b""
        body = b""
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > MAX_DOCUMENT:
                return 200, None
        return 200, body


def _judge(project: Project, domain: str, url: str, *, status: int, body: bytes | None, elapsed: int) -> DidCheck:
    publish = f"serve GET /v1/{project.project_id}/did.json of this server there"
    if status != 200:
        hint = " (redirects are not followed: serve the document at this URL)" if 300 <= status < 400 else ""
        return DidCheck(HTTP_ERROR, f"{url} answered HTTP {status}{hint}; {publish}", domain, url, status, elapsed)
    if body is None:
        return DidCheck(INVALID, f"{url} is larger than {MAX_DOCUMENT} bytes, so not a did.json; {publish}",
                        domain, url, status, elapsed)
    try:
        keys = parse_did_document(orjson.loads(body), did_web(domain))
    except (orjson.JSONDecodeError, DidError, ValueError, TypeError) as exc:
        return DidCheck(INVALID, f"{url} is not a did:web document for {did_web(domain)}: {str(exc)[:200]}; "
                        f"{publish}", domain, url, status, elapsed)
    assert project.subscribe_public is not None and project.authentication_public is not None
    wrong = [name for name, published, ours in (
        ("key agreement (subscribe) key", keys.key_agreement, project.subscribe_public),
        ("authentication key", keys.authentication, project.authentication_public),
    ) if published.hex() != ours]
    if wrong:
        return DidCheck(MISMATCH, f"{url} publishes another {' and '.join(wrong)} than this project's; wallets "
                        f"would reject its notifications: {publish}", domain, url, status, elapsed)
    return DidCheck(OK, f"{url} publishes this project's keys", domain, url, status, elapsed)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
