"""Finding an app's keys (its did:web document) and its notification types.

A did:web resolves to ``https://<domain>/.well-known/did.json`` (``http://`` for the host ``localhost``
itself; the JS client also takes http for look-alikes such as ``localhost.x``). The resolver is an interface
so a wallet can add caching, pinning or a test double; the built-in one uses httpx and refuses a document
whose ``id`` is not the did:web asked for (a server cannot hand out another app's keys).
"""

from __future__ import annotations

from typing import Protocol

import httpx

from wcnotify.protocol.did import DidError, DidWebKeys, did_web, did_web_url, parse_did_document
from wcnotify.wallet.models import WalletError

_MAX_DOCUMENT_BYTES = 64 * 1024


class DidResolutionError(WalletError):
    """The app's did.json could not be fetched or is not a valid Notify did:web document."""


class DidResolver(Protocol):
    async def resolve(self, domain: str) -> DidWebKeys:
        """The keys ``did:web:<domain>`` publishes; :class:`DidResolutionError` when it cannot say."""
        ...


class HttpDidResolver:
    """Fetches ``/.well-known/did.json`` over the shared httpx client."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def resolve(self, domain: str) -> DidWebKeys:
        try:
            url = did_web_url(domain)
            response = await self._http.get(url)
        except DidError as exc:
            raise DidResolutionError(f"{domain[:260]!r} is not an app domain: {exc}") from exc
        except httpx.HTTPError as exc:
            raise DidResolutionError(f"cannot fetch {url}: {exc}; is the app's web server up?") from exc
        if response.status_code != 200:
            raise DidResolutionError(f"{url} answered HTTP {response.status_code}; the app publishes no did.json")
        if len(response.content) > _MAX_DOCUMENT_BYTES:
            raise DidResolutionError(f"{url} is larger than {_MAX_DOCUMENT_BYTES} bytes; not a did.json")
        try:
            return parse_did_document(response.json(), did_web(domain))
        except (ValueError, DidError) as exc:
            raise DidResolutionError(f"{url} is not a valid did:web document: {exc}") from exc
