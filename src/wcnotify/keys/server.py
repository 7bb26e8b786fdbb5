"""A running keys server: ``async with KeysServer(KeysConfig(port=0, database_url=…)) as keys: keys.url``.

The socket is bound in the constructor (port 0 picks a free one, so tests and ``wcnotify up`` know the URL
before serving) and the shared :class:`~wcnotify.serving.AsgiService` serves the
:class:`~wcnotify.keys.app.KeysApp` on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from wcnotify import spec
from wcnotify.keys.app import Clock, KeysApp, keys_audiences
from wcnotify.serving import AsgiService


@dataclass(frozen=True)
class KeysConfig:
    """What a keys server is started with; the CLI builds one from its options."""

    host: str = "127.0.0.1"
    port: int = spec.KEYS_DEFAULT_PORT  # 0 picks a free port (tests)
    database_url: str = spec.KEYS_DEFAULT_DATABASE_URL  # sqlite:///PATH or postgresql://…
    public_urls: tuple[str, ...] = ()  # URLs wallets reach this server at (accepted as idAuth aud)
    max_body_bytes: int = spec.KEYS_MAX_BODY_BYTES


class KeysServer(AsgiService):
    """The keys server on its own port. Pass ``engine`` to share an open database instead of
    ``config.database_url`` (the engine is then not disposed on stop)."""

    def __init__(self, config: KeysConfig, *, clock: Clock = time.time, engine: AsyncEngine | None = None) -> None:
        # bind first (the base class does), so the accepted idAuth audiences name the real port
        super().__init__(None, config.host, config.port, name="keys server")
        self.config = config
        self.audiences = keys_audiences(config.host, self.port, config.public_urls)
        self.keys = KeysApp(
            self.audiences,
            engine=engine,
            database_url=None if engine is not None else config.database_url,
            clock=clock,
            max_body_bytes=config.max_body_bytes,
        )
        self.app = self.keys.app

    async def __aenter__(self) -> KeysServer:
        await self.start()
        return self
