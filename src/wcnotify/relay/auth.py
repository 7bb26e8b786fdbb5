"""Who is connecting: the relay-auth JWT, checked before a WebSocket is accepted or an /rpc call is run.

The JWT (protocol.md §2, interop.md) is signed by the client's Ed25519 key, whose did:key (``iss``) is the
client id. It must not be expired and its ``aud`` must be one of the URLs the relay is reachable at: the JS
client writes its configured relay URL verbatim, so ``ws://localhost:P`` and ``ws://127.0.0.1:P`` are
different audiences and the relay accepts the whole set (see :func:`default_audiences`).
"""

from __future__ import annotations

from collections.abc import Iterable

from wcnotify.protocol.jwt import JwtError, RelayAuthClaims
from wcnotify.serving import service_audiences

_SCHEMES = ("ws", "wss", "http", "https")


class RelayAuthError(Exception):
    """The connection's auth JWT is missing or unacceptable; ``reason`` says which, for the 401 body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def default_audiences(host: str, port: int, public_urls: Iterable[str] = ()) -> frozenset[str]:
    """Every ws/wss/http/https URL of the relay (see :func:`wcnotify.serving.service_audiences`)."""
    return service_audiences(host, port, public_urls, _SCHEMES)


def authenticate(token: str | None, *, now: int, audiences: frozenset[str]) -> str:
    """The client id (``iss`` did:key) of a valid relay auth JWT; RelayAuthError otherwise."""
    if not token:
        raise RelayAuthError("missing auth: pass the relay auth JWT as ?auth=<jwt> or Authorization: Bearer <jwt>")
    try:
        claims = RelayAuthClaims.verify(token, now=now, aud=audiences)
    except JwtError as exc:
        raise RelayAuthError(f"invalid auth JWT: {exc}") from exc
    return claims.iss
