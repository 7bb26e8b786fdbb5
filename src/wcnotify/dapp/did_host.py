"""Serving a dapp's ``/.well-known/did.json`` (and ``wc-notify-config.json``): the ASGI app :class:`DidHost`.

Wallets resolve ``did:web:<app domain>`` to ``https://<app domain>/.well-known/did.json`` (``http://`` for
``localhost``) to learn where to send their subscribe request and which key signs the dapp's
notifications. The notify server makes the keys; the dapp's own site must publish them. ``DidHost`` is
that page, as a plain ASGI app a dapp runs as its site or puts in front of it:

* ``DidHost(document)`` serves a document the dapp saved (from :meth:`NotifyDappClient.did_document`).
* ``DidHost(client=client)`` fetches the document (and the app's name and notification types, for
  ``wc-notify-config.json``) from the notify server and keeps them ``ttl`` seconds, so a wallet's lookup
  costs the notify server nothing most of the time. When the server cannot be reached, the last copy is
  served; with none yet, the answer is 503 (404 while the project has no app domain).
* ``app=`` is the dapp's own ASGI app: every other path, and the server's lifespan events, go to it.
  Without one, other paths are 404.

Documents are served with ``Access-Control-Allow-Origin: *``: a wallet running in a browser fetches them
from another origin, and they hold nothing but public keys and public names.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from wcnotify import spec
from wcnotify.dapp._asgi import App, Receive, Scope, Send, lifespan, respond, respond_json
from wcnotify.dapp.client import NotifyDappClient
from wcnotify.dapp.errors import DappApiError, NotFoundError
from wcnotify.protocol.did import DidError, parse_did_document

__all__ = ["DEFAULT_TTL", "DidHost"]

log = logging.getLogger("wcnotify.dapp.did_host")

DEFAULT_TTL = 300.0  # seconds a fetched document is served before it is fetched again
_HEADERS = ((b"access-control-allow-origin", b"*"), (b"cache-control", b"public, max-age=300"))


class _Unavailable(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _encode_did(document: Mapping[str, Any]) -> bytes:
    """The document as served, once it is a did.json wallets can use (else DidError, before anyone sees it)."""
    parse_did_document(dict(document))
    return orjson.dumps(dict(document))


class DidHost:
    """An ASGI app serving ``/.well-known/did.json`` and, when known, ``/.well-known/wc-notify-config.json``.

    Give it either the ``document`` (and optionally the ``notify_config`` document) or a ``client`` to fetch
    both from. ``clock`` (monotonic seconds) drives the cache only.
    """

    def __init__(
        self, document: Mapping[str, Any] | None = None, *, client: NotifyDappClient | None = None,
        notify_config: Mapping[str, Any] | None = None, app: App | None = None, ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (document is None) == (client is None):
            raise ValueError("DidHost needs either the did.json document or a NotifyDappClient to fetch it with")
        self.client = client
        self.app = app
        self.ttl = ttl
        self.clock = clock
        self._did = _encode_did(document) if document is not None else None
        self._config = orjson.dumps(dict(notify_config)) if notify_config is not None else None
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        source = repr(self.client) if self.client is not None else "a fixed document"
        return f"DidHost({source})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            root = scope.get("root_path") or ""
            if root and path.startswith(root):  # mounted: match the path below the mount point
                path = path[len(root):]
            if path in (spec.DID_JSON_PATH, spec.NOTIFY_CONFIG_JSON_PATH):
                await self._serve(path, scope["method"], send)
                return
        if self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "lifespan":
            await lifespan(receive, send)
        elif scope["type"] == "http":
            await respond_json(send, 404, {"error": "not found"})

    async def _serve(self, path: str, method: str, send: Send) -> None:
        if method not in ("GET", "HEAD"):
            await respond_json(send, 405, {"error": f"{path} is read with GET"}, ((b"allow", b"GET, HEAD"),))
            return
        try:
            await self._refresh()
        except _Unavailable as exc:
            await respond_json(send, exc.status, {"error": exc.message}, _HEADERS[:1])
            return
        body = self._did if path == spec.DID_JSON_PATH else self._config
        if body is None:
            await respond_json(send, 404, {"error": f"this app publishes no {path}"}, _HEADERS[:1])
            return
        await respond(send, 200, body, headers=_HEADERS, head=method == "HEAD")

    async def _refresh(self) -> None:
        """Fetch the documents when there is a client and the copy is older than ``ttl`` (or missing)."""
        if self.client is None or (self._fetched_at is not None and self.clock() - self._fetched_at < self.ttl):
            return
        async with self._lock:  # one fetch for a crowd of wallets arriving at once
            if self._fetched_at is not None and self.clock() - self._fetched_at < self.ttl:
                return
            try:
                did = _encode_did(await self.client.did_document())
                config = orjson.dumps((await self.client.app_config()).wc_notify_config())
            except (DappApiError, DidError) as exc:
                if self._did is not None:  # keep serving the last good copy; ask again on the next request
                    log.warning("did.json of project %s not refreshed, serving the last copy: %s",
                                self.client.project_id, exc)
                    return
                status = 404 if isinstance(exc, NotFoundError) else 503
                raise _Unavailable(status, f"the did.json is not available from the notify server: {exc}") from exc
            self._did, self._config, self._fetched_at = did, config, self.clock()
