"""The keys server's HTTP API (Starlette), a thin adapter over ``protocol.cacao``/``protocol.jwt`` and the store.

* ``POST /identity {cacao}``: the CACAO must be EIP-4361 with an EIP-191 signature by its ``iss`` account
  over the exact SIWE text, unexpired, and name an Ed25519 identity key. The statement is not checked
  here (the reference does not either): what the key may do is the notify server's decision, made on
  every request from the same CACAO. EIP-1271/EIP-6492 (contract wallets) need a chain RPC endpoint,
  which this server does not have, and are refused with a message saying so.
* ``GET /identity?publicKey=z6Mk…`` (a ``did:key:`` prefix is accepted too): ``value: {cacao}``, the CACAO
  exactly as it was registered; 404 "Identity key not found" as the reference answers.
* ``DELETE /identity {idAuth}``: a JWT signed by the identity key, ``act: unregister_identity``, one of this
  server's URLs as ``aud``, not expired (seconds or the JS client's milliseconds), and ``pkh`` naming the
  account the key is registered to. The reference checks only the signature and ``act``; then anyone
  holding an old idAuth (they never expire there) could replay it.
* ``GET /health``.

Input is never trusted to be JSON, an object, or small: bodies over ``KEYS_MAX_BODY_BYTES`` get 413 before
they are read, anything malformed gets 400 with the reason, and only a storage failure gives a 500.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from wcnotify import spec
from wcnotify.keys.envelope import KeysApiError, failure_body, success_body
from wcnotify.keys.store import IdentityConflictError, IdentityStore
from wcnotify.protocol.cacao import Cacao, CacaoError, identity_key, verify_cacao
from wcnotify.protocol.did import Account, DidError, decode_did_key, encode_did_key
from wcnotify.protocol.jwt import JwtError, UnregisterIdentityClaims
from wcnotify.serving import service_audiences
from wcnotify.spec import KeysErrorName
from wcnotify.storage import open_database

log = logging.getLogger("wcnotify.keys")

Clock = Callable[[], float]
Handler = Callable[[Any, Request], Awaitable[Response]]

def keys_audiences(host: str, port: int, public_urls: Iterable[str] = ()) -> frozenset[str]:
    """The URLs a wallet may have configured as ``keyserverUrl`` (and so writes as the idAuth ``aud``)."""
    return service_audiences(host, port, public_urls)


def _respond(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def _not_found(key: str) -> KeysApiError:
    """The reference's 404, word for word (``StoreError::NotFound``)."""
    entity = spec.KEYS_NOT_FOUND_ENTITY
    return KeysApiError(404, KeysErrorName.NOT_FOUND, f"Cannot find {entity} with specified identifier {key}")


def _api(handler: Handler) -> Handler:
    """Turn refusals into FAILURE envelopes; anything unexpected is logged and answered 500, never leaked."""

    @functools.wraps(handler)
    async def wrapped(self: Any, request: Request) -> Response:
        try:
            return await handler(self, request)
        except KeysApiError as exc:
            return _respond(failure_body(exc.name, exc.message), exc.status)
        except Exception:
            log.exception("keys server: %s %s failed", request.method, request.url.path)
            message = "the keys server could not complete the request (storage failure); retry later"
            return _respond(failure_body(KeysErrorName.INTERNAL, message), 500)

    return wrapped


class _CollapseLeadingSlashes:
    """identity-keys requests ``${keyserverUrl}/identity`` verbatim, so a wallet configured with a trailing
    slash asks for ``//identity``: the same resource, and served as such."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("//"):
            scope = {**scope, "path": "/" + scope["path"].lstrip("/")}
        await self.app(scope, receive, send)


class KeysApp:
    """The ASGI app of one keys server. Give it an ``engine`` to share one (``wcnotify up``), or a
    ``database_url`` and it opens (and migrates) its own when it starts and closes it when it stops."""

    def __init__(
        self,
        audiences: frozenset[str],
        *,
        engine: AsyncEngine | None = None,
        database_url: str | None = None,
        clock: Clock = time.time,
        max_body_bytes: int = spec.KEYS_MAX_BODY_BYTES,
    ) -> None:
        if (engine is None) == (database_url is None):
            raise ValueError("give the keys app exactly one of engine or database_url")
        self.audiences = audiences
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self._database_url = database_url
        self._store = IdentityStore(engine) if engine is not None else None
        self.starlette = Starlette(
            routes=[
                Route(spec.KEYS_HTTP_PATH_IDENTITY, self.register, methods=["POST"]),
                Route(spec.KEYS_HTTP_PATH_IDENTITY, self.resolve, methods=["GET"]),
                Route(spec.KEYS_HTTP_PATH_IDENTITY, self.unregister, methods=["DELETE"]),
                Route(spec.KEYS_HTTP_PATH_HEALTH, self.health, methods=["GET"]),
            ],
            exception_handlers={HTTPException: self._http_error},
            lifespan=self.lifespan,
        )
        self.app = _CollapseLeadingSlashes(self.starlette)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        if self._database_url is None:
            yield
            return
        engine = await open_database(self._database_url)
        self._store = IdentityStore(engine)
        try:
            yield
        finally:
            self._store = None
            await engine.dispose()

    @property
    def store(self) -> IdentityStore:
        if self._store is None:
            raise RuntimeError("the keys app is not started (lifespan did not run)")
        return self._store

    # -- input

    async def _json_object(self, request: Request) -> dict[str, Any]:
        """The body as a JSON object, read at most ``max_body_bytes`` far."""
        cap = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise KeysApiError(413, KeysErrorName.VALIDATION, f"request body over {cap} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > cap:
                raise KeysApiError(413, KeysErrorName.VALIDATION, f"request body over {cap} bytes")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise KeysApiError(400, KeysErrorName.VALIDATION, f"request body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise KeysApiError(400, KeysErrorName.VALIDATION, "request body must be a JSON object")
        return data

    @staticmethod
    def _multibase(public_key: object) -> str:
        """``z6Mk…`` of a did:key or bare multibase Ed25519 key, canonical; 400 ``did`` otherwise."""
        if not isinstance(public_key, str) or not public_key:
            raise KeysApiError(400, KeysErrorName.VALIDATION, f"{spec.KEYS_QUERY_PUBLIC_KEY} is required")
        try:
            did = encode_did_key(decode_did_key(public_key))
        except DidError as exc:
            raise KeysApiError(400, KeysErrorName.DID, f"{spec.KEYS_QUERY_PUBLIC_KEY}: {exc}") from exc
        return did.removeprefix(spec.DID_KEY_PREFIX)

    # -- handlers

    @_api
    async def register(self, request: Request) -> Response:
        body = await self._json_object(request)
        raw = body.get("cacao")
        if not isinstance(raw, dict):
            raise KeysApiError(400, KeysErrorName.VALIDATION, 'body must be {"cacao": {h, p, s}}')
        try:
            cacao = Cacao.from_dict(raw)
            verify_cacao(cacao, now=int(self.clock()))
            key = identity_key(cacao.payload).removeprefix(spec.DID_KEY_PREFIX)
        except CacaoError as exc:
            raise KeysApiError(400, KeysErrorName.CACAO, str(exc)) from exc
        account = cacao.payload.account
        try:
            await self.store.register(key, account, orjson.dumps(raw).decode(), now_ms=int(self.clock() * 1000))
        except IdentityConflictError as exc:
            raise KeysApiError(
                409, KeysErrorName.CONFLICT, f"{exc}: unregister it there first, or register a new identity key"
            ) from exc
        return _respond(success_body())

    @_api
    async def resolve(self, request: Request) -> Response:
        key = self._multibase(request.query_params.get(spec.KEYS_QUERY_PUBLIC_KEY))
        stored = await self.store.get(key)
        if stored is None:
            raise _not_found(key)
        return _respond(success_body({"cacao": orjson.Fragment(stored.cacao)}))

    @_api
    async def unregister(self, request: Request) -> Response:
        body = await self._json_object(request)
        token = body.get("idAuth")
        if not isinstance(token, str):
            raise KeysApiError(400, KeysErrorName.VALIDATION, 'body must be {"idAuth": "<JWT>"}')
        try:
            claims = UnregisterIdentityClaims.verify(token, now=int(self.clock()), aud=self.audiences)
        except JwtError as exc:
            raise KeysApiError(400, KeysErrorName.JWT_VERIFICATION, f"idAuth: {exc}") from exc
        try:
            account = Account.from_did_pkh(claims.pkh)
        except DidError as exc:
            raise KeysApiError(400, KeysErrorName.DID, f"idAuth pkh: {exc}") from exc
        key = claims.iss.removeprefix(spec.DID_KEY_PREFIX)
        stored = await self.store.get(key)
        if stored is None:
            raise _not_found(key)
        if not stored.parsed_account.same_address(account):
            raise KeysApiError(
                403, KeysErrorName.JWT_VERIFICATION,
                f"idAuth pkh {claims.pkh[:200]} is not the account this identity key is registered to",
            )
        if not await self.store.delete(key, account):
            raise _not_found(key)  # deleted meanwhile by another request
        return _respond(success_body())

    async def health(self, _request: Request) -> Response:
        return _respond(success_body({"status": "ok"}))

    async def _http_error(self, _request: Request, exc: Exception) -> Response:
        """Unknown paths and wrong methods still answer with the envelope (the clients parse it)."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return _respond(failure_body(KeysErrorName.VALIDATION, str(detail)), status)
