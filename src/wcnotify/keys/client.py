"""Talking to a keys server: :class:`KeysClient` for wallets, :class:`IdentityResolver` for the notify server.

The resolver is where the notify server decides who signed a request (protocol.md §5 "How the Notify
server authorizes a request"): the request's JWT names a keys server (``ksu``) and an identity key
(``iss``); the CACAO registered for that key says which account it acts for and which apps it may manage.
Where it departs from the reference, and why:

* ``ksu`` must be on an allowlist. The reference fetches whatever URL the wallet wrote, which lets anyone
  make the notify server issue requests into its own network (SSRF). Redirects are not followed either.
* Verified identities are cached for ``IDENTITY_CACHE_TTL`` (minutes), not a week: an unregistered key
  stops working within minutes. Failed lookups (404, errors) are not cached, so a wallet that registers
  right after a refusal is not locked out. The cache is an LRU with a fixed number of entries.
* The server's own faults (keys server down, 5xx, nonsense answers) are :class:`KeysServerUnavailableError`
  with ``server_fault = True``, so the notify server can answer "retry" rather than blame the wallet.

Every error's message names the cause; the notify server sends it to the wallet as is.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from wcnotify import spec
from wcnotify.keys.envelope import KeysApiError, parse_envelope
from wcnotify.protocol.cacao import (
    Authorization,
    Cacao,
    CacaoAuthorizationError,
    CacaoError,
    authorization,
    identity_key,
    verify_cacao,
)
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.did import Account, DidError, decode_did_key, encode_did_key
from wcnotify.protocol.jwt import UnregisterIdentityClaims

Clock = Callable[[], float]


# ------------------------------------------------------------------------------------------ wallets


class KeysClientError(Exception):
    """The keys server refused the request (``status``, ``name`` and ``message`` are the server's) or
    could not be reached (``status`` None, ``name`` "unavailable")."""

    def __init__(self, status: int | None, name: str, message: str) -> None:
        super().__init__(f"keys server {status or '(unreachable)'} {name}: {message}")
        self.status = status
        self.name = name
        self.message = message


class KeysClient:
    """Register, resolve and unregister identity keys at one keys server (what identity-keys does)."""

    def __init__(self, base_url: str, http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=spec.KEYS_HTTP_TIMEOUT, follow_redirects=False)

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> KeysClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _call(self, method: str, *, json: Any = None, params: dict[str, str] | None = None) -> Any:
        url = self.base_url + spec.KEYS_HTTP_PATH_IDENTITY
        try:
            response = await self.http.request(method, url, json=json, params=params)
        except httpx.HTTPError as exc:
            raise KeysClientError(None, "unavailable", f"{method} {url} failed: {exc!r}") from exc
        try:
            return parse_envelope(response.status_code, response.content)
        except KeysApiError as exc:
            raise KeysClientError(exc.status, exc.name, exc.message) from exc

    async def register(self, cacao: Cacao | dict[str, Any]) -> None:
        """``POST /identity``: store the signed CACAO (already registered for this account: fine)."""
        await self._call("POST", json={"cacao": cacao.to_dict() if isinstance(cacao, Cacao) else cacao})

    async def resolve(self, public_key: str) -> Cacao | None:
        """The CACAO registered for ``public_key`` (did:key or ``z6Mk…``), None when it is not registered."""
        try:
            value = await self._call(
                "GET", params={spec.KEYS_QUERY_PUBLIC_KEY: public_key.removeprefix(spec.DID_KEY_PREFIX)}
            )
        except KeysClientError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(value, dict):
            raise KeysClientError(200, spec.KeysErrorName.INTERNAL, "answer has no value.cacao")
        try:
            return Cacao.from_dict(value.get("cacao"))
        except CacaoError as exc:
            raise KeysClientError(200, spec.KeysErrorName.CACAO, f"served CACAO is malformed: {exc}") from exc

    async def unregister(self, id_auth: str) -> None:
        """``DELETE /identity {idAuth}`` with a JWT the identity key signed (see :meth:`unregister_key`)."""
        await self._call("DELETE", json={"idAuth": id_auth})

    async def unregister_key(
        self, key: Ed25519KeyPair, account: Account, *, now: int, ttl: int = spec.KEYS_UNREGISTER_TTL
    ) -> None:
        """Sign the ``unregister_identity`` idAuth for ``key`` (aud: this server) and send it."""
        claims = UnregisterIdentityClaims(
            iat=now, exp=now + ttl, iss=encode_did_key(key.public_key), aud=self.base_url, pkh=account.did_pkh,
            sub=spec.KEYS_JWT_SUB_IDENTITY,
        )
        await self.unregister(claims.sign(key))


# ------------------------------------------------------------------------------------ notify server


class IdentityError(Exception):
    """The identity behind a request cannot be established. ``message`` is meant for the wallet."""

    server_fault: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KeysServerNotAllowedError(IdentityError):
    """``ksu`` is not one of the keys servers this notify server trusts."""


class IdentityNotRegisteredError(IdentityError):
    """The keys server does not know the identity key (never registered, or unregistered)."""


class KeysServerUnavailableError(IdentityError):
    """The keys server could not be asked or answered nonsense: the server side's fault, worth a retry."""

    server_fault = True


class InvalidIdentityError(IdentityError):
    """``iss`` is not an Ed25519 did:key, or the registered CACAO does not verify or names another key."""


class IdentityNotAuthorizedError(IdentityError):
    """The CACAO is valid but grants nothing Notify understands (no known statement or ReCap)."""


@dataclass(frozen=True)
class ResolvedIdentity:
    """A verified identity: the registered CACAO and what it authorizes (account, all apps or one domain)."""

    cacao: Cacao
    authorization: Authorization

    @property
    def account(self) -> Account:
        return self.authorization.account


def normalize_keys_server_url(url: str) -> str | None:
    """``scheme://host[:port][/path]`` lowercased, default port and trailing slash dropped; None for
    anything that is not a plain http(s) URL (user info, query, fragment, no host)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except (ValueError, AttributeError):
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host or parts.username is not None or parts.password is not None:
        return None
    if parts.query or parts.fragment:
        return None
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    elif ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}{parts.path.rstrip('/')}"


def _cacao_expiry(cacao: Cacao) -> float | None:
    """``p.exp`` as Unix seconds (already validated by ``verify_cacao``), None when the CACAO has none."""
    if cacao.payload.exp is None:
        return None
    return datetime.fromisoformat(cacao.payload.exp.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class _Entry:
    identity: ResolvedIdentity
    cached_until: float  # clock() time
    cacao_exp: float | None  # Unix seconds, compared with the request's ``now``


class IdentityResolver:
    """Resolve and verify ``(ksu, iss)`` for the notify server, with a short-lived bounded cache.

    ``allowed_urls``: the keys servers wallets may name (normally this deployment's own keys server).
    ``clock`` drives only the cache; verification uses the ``now`` each call passes.
    """

    def __init__(
        self,
        allowed_urls: Iterable[str],
        *,
        http: httpx.AsyncClient | None = None,
        cache_ttl: float = spec.IDENTITY_CACHE_TTL,
        cache_size: int = spec.IDENTITY_CACHE_MAX_ENTRIES,
        clock: Clock = time.time,
    ) -> None:
        allowed: set[str] = set()
        for url in allowed_urls:
            normalized = normalize_keys_server_url(url)
            if normalized is None:
                raise ValueError(f"not an http(s) keys server URL: {url!r}")
            allowed.add(normalized)
        self.allowed = frozenset(allowed)
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self.clock = clock
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=spec.KEYS_HTTP_TIMEOUT, follow_redirects=False)
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    def invalidate(self, ksu: str | None = None, iss: str | None = None) -> None:
        """Forget one cached identity, or all of them (no arguments)."""
        if ksu is None or iss is None:
            self._cache.clear()
            return
        normalized = normalize_keys_server_url(ksu)
        self._cache.pop((normalized or ksu, iss.removeprefix(spec.DID_KEY_PREFIX)), None)

    async def resolve(self, ksu: str, iss: str, *, now: int) -> ResolvedIdentity:
        """The verified identity of ``iss`` registered at ``ksu``; an :class:`IdentityError` subclass otherwise."""
        base = normalize_keys_server_url(ksu) if isinstance(ksu, str) else None
        if base is None or base not in self.allowed:
            raise KeysServerNotAllowedError(
                f"keys server {str(ksu)[:200]!r} is not one this notify server uses; "
                f"register your identity at {' or '.join(sorted(self.allowed)) or '(none configured)'}"
            )
        try:
            did = encode_did_key(decode_did_key(iss))
        except DidError as exc:
            raise InvalidIdentityError(f"iss is not an Ed25519 did:key identity key: {exc}") from exc
        multibase = did.removeprefix(spec.DID_KEY_PREFIX)
        key = (base, multibase)
        entry = self._cache.get(key)
        if entry is not None:
            if entry.cached_until > self.clock() and (entry.cacao_exp is None or entry.cacao_exp > now):
                self._cache.move_to_end(key)
                return entry.identity
            del self._cache[key]
        cacao = await self._fetch(base, multibase)
        identity = self._verify(cacao, did, now=now)
        self._cache[key] = _Entry(identity, self.clock() + self.cache_ttl, _cacao_expiry(cacao))
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return identity

    async def _fetch(self, base: str, multibase: str) -> Cacao:
        url = base + spec.KEYS_HTTP_PATH_IDENTITY
        try:
            # never follow a redirect, whatever the shared client is set to: it would leave the allowlist
            response = await self.http.get(url, params={spec.KEYS_QUERY_PUBLIC_KEY: multibase}, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise KeysServerUnavailableError(f"keys server {base} could not be reached: {exc!r}") from exc
        if response.status_code == 404:
            raise IdentityNotRegisteredError(
                f"identity key did:key:{multibase} is not registered at {base}: register it (again) first"
            )
        if response.status_code >= 500:
            raise KeysServerUnavailableError(f"keys server {base} failed with HTTP {response.status_code}")
        try:
            value = parse_envelope(response.status_code, response.content)
            if not isinstance(value, dict):
                raise KeysServerUnavailableError(f"keys server {base} answered without value.cacao")
            return Cacao.from_dict(value.get("cacao"))
        except KeysApiError as exc:
            raise KeysServerUnavailableError(f"keys server {base} refused the lookup: {exc}") from exc
        except CacaoError as exc:
            raise InvalidIdentityError(f"the CACAO registered at {base} is malformed: {exc}") from exc

    @staticmethod
    def _verify(cacao: Cacao, did: str, *, now: int) -> ResolvedIdentity:
        try:
            verify_cacao(cacao, now=now)
        except CacaoError as exc:
            raise InvalidIdentityError(f"the registered CACAO does not verify: {exc}") from exc
        try:
            named = identity_key(cacao.payload)
        except CacaoError as exc:
            raise InvalidIdentityError(f"the registered CACAO names no identity key: {exc}") from exc
        if named != did:
            raise InvalidIdentityError(f"the registered CACAO delegates to {named}, not to {did}")
        try:
            grant = authorization(cacao.payload)
        except CacaoAuthorizationError as exc:
            raise IdentityNotAuthorizedError(
                f"the registered CACAO does not authorize Notify: {exc}; register again with the Notify statement"
            ) from exc
        except CacaoError as exc:
            raise InvalidIdentityError(f"the registered CACAO is malformed: {exc}") from exc
        return ResolvedIdentity(cacao, grant)
