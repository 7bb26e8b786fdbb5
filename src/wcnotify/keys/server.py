"""A running keys server: ``async with KeysServer(KeysConfig(port=0, database_url=…)) as keys: keys.url``.

The socket is bound in the constructor (port 0 picks a free one, so tests and ``wcnotify up`` know the URL
before serving) and uvicorn serves the :class:`~wcnotify.keys.app.KeysApp` on it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from wcnotify import spec
from wcnotify.keys.app import Clock, KeysApp, keys_audiences
from wcnotify.relay.server import bind_socket


@dataclass(frozen=True)
class KeysConfig:
    """What a keys server is started with; the CLI builds one from its options."""

    host: str = "127.0.0.1"
    port: int = spec.KEYS_DEFAULT_PORT  # 0 picks a free port (tests)
    database_url: str = spec.KEYS_DEFAULT_DATABASE_URL  # sqlite:///PATH or postgresql://…
    public_urls: tuple[str, ...] = ()  # URLs wallets reach this server at (accepted as idAuth aud)
    max_body_bytes: int = spec.KEYS_MAX_BODY_BYTES


class KeysServer:
    """The keys server on its own port. Pass ``engine`` to share an open database instead of
    ``config.database_url`` (the engine is then not disposed on stop)."""

    def __init__(self, config: KeysConfig, *, clock: Clock = time.time, engine: AsyncEngine | None = None) -> None:
        self.config = config
        self.sock = bind_socket(config.host, config.port)
        self.port: int = self.sock.getsockname()[1]
        self.audiences = keys_audiences(config.host, self.port, config.public_urls)
        self.keys = KeysApp(
            self.audiences,
            engine=engine,
            database_url=None if engine is not None else config.database_url,
            clock=clock,
            max_body_bytes=config.max_body_bytes,
        )
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The URL a local client (or the notify server in the same process) reaches this server at."""
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "", "::") else self.config.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def _uvicorn(self, log_level: str = "warning") -> uvicorn.Server:
        return uvicorn.Server(uvicorn.Config(self.keys.app, log_level=log_level, lifespan="on", access_log=False))

    async def start(self, timeout: float = 30) -> None:
        self._server = self._uvicorn()
        self._task = asyncio.create_task(self._server.serve(sockets=[self.sock]))
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the startup error (e.g. the database is unreachable)
                raise RuntimeError("keys server stopped during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"keys server did not start within {timeout} s")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self.sock.close()

    async def __aenter__(self) -> KeysServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def run(self, log_level: str = "info") -> None:
        """Serve until interrupted (the CLI)."""
        self._uvicorn(log_level).run(sockets=[self.sock])
