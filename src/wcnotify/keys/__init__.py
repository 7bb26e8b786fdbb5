"""The keys server (identity keys registered against account-signed CACAOs) and its clients.

* :mod:`~wcnotify.keys.app` / :mod:`~wcnotify.keys.server`: the HTTP API and a runnable server;
* :mod:`~wcnotify.keys.store`: the ``keys_identities`` table;
* :mod:`~wcnotify.keys.client`: :class:`KeysClient` (wallets) and :class:`IdentityResolver` (notify server).
"""

from wcnotify.keys.client import (
    IdentityError,
    IdentityNotAuthorizedError,
    IdentityNotRegisteredError,
    IdentityResolver,
    InvalidIdentityError,
    KeysClient,
    KeysClientError,
    KeysServerNotAllowedError,
    KeysServerUnavailableError,
    ResolvedIdentity,
)
from wcnotify.keys.server import KeysConfig, KeysServer

__all__ = [
    "IdentityError",
    "IdentityNotAuthorizedError",
    "IdentityNotRegisteredError",
    "IdentityResolver",
    "InvalidIdentityError",
    "KeysClient",
    "KeysClientError",
    "KeysConfig",
    "KeysServer",
    "KeysServerNotAllowedError",
    "KeysServerUnavailableError",
    "ResolvedIdentity",
]
