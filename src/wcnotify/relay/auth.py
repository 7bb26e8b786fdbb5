"""Who is connecting: the relay-auth JWT, checked before a WebSocket is accepted or an /rpc call is run.

The JWT (protocol.md §2, interop.md) is signed by the client's Ed25519 key, whose did:key (``iss``) is the
client id. It must not be expired and its ``aud`` must be one of the URLs the relay is reachable at: the JS
client writes its configured relay URL verbatim, so ``ws://localhost:P`` and ``ws://127.0.0.1:P`` are
different audiences and the relay accepts the whole set (see :func:`default_audiences`).
"""

from __future__ import annotations

from collections.abc import Iterable

from wcnotify.protocol.jwt import JwtError, RelayAuthClaims

_SCHEMES = ("ws", "wss", "http", "https")
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class RelayAuthError(Exception):
    """The connection's auth JWT is missing or unacceptable; ``reason`` says which, for the 401 body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def default_audiences(host: str, port: int, public_urls: Iterable[str] = ()) -> frozenset[str]:
    """Every ws/wss/http/https URL of ``host:port``, ``localhost:port`` and ``127.0.0.1:port`` (with and
    without a trailing slash), plus ``public_urls`` as given and without a trailing slash."""
    hosts = {"localhost", "127.0.0.1"}
    if host not in _WILDCARD_HOSTS:
        hosts.add(f"[{host}]" if ":" in host else host)
    urls = {f"{scheme}://{h}:{port}" for scheme in _SCHEMES for h in hosts}
    urls |= {u.rstrip("/") for u in public_urls}
    return frozenset(urls | {u + "/" for u in urls})


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def authenticate(token: str | None, *, now: int, audiences: frozenset[str]) -> str:
    """The client id (``iss`` did:key) of a valid relay auth JWT; RelayAuthError otherwise."""
    if not token:
        raise RelayAuthError("missing auth: pass the relay auth JWT as ?auth=<jwt> or Authorization: Bearer <jwt>")
    try:
        claims = RelayAuthClaims.verify(token, now=now, aud=audiences)
    except JwtError as exc:
        raise RelayAuthError(f"invalid auth JWT: {exc}") from exc
    return claims.iss
