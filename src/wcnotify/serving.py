"""Running an ASGI app under uvicorn on a socket bound in advance: shared by every wcnotify service.

Binding first means port 0 works (tests learn the port before serving) and every accepted socket has
TCP_NODELAY: without it a response written as headers then body waits ~40 ms for the peer's delayed ACK.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterable
from typing import Any, Self

import uvicorn

from wcnotify import event_loop, spec


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: a free one), bound before uvicorn starts so the port is known."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted sockets inherit this (see the module docstring)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def service_audiences(
    host: str, port: int, public_urls: Iterable[str] = (), schemes: Iterable[str] = ("http", "https")
) -> frozenset[str]:
    """The URLs a client may have configured for a service (and so signs as a JWT ``aud``): each scheme of
    ``host``, ``localhost`` and ``127.0.0.1`` at ``port``, plus ``public_urls``; each with and without a
    trailing slash (JS clients write the URL as configured)."""
    hosts = {"localhost", "127.0.0.1"}
    if host not in _WILDCARD_HOSTS:
        hosts.add(f"[{host}]" if ":" in host else host)
    urls = {f"{scheme}://{h}:{port}" for scheme in schemes for h in hosts}
    urls |= {u.rstrip("/") for u in public_urls}
    return frozenset(urls | {u + "/" for u in urls})


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def client_host(host: str) -> str:
    """The address a local client uses to reach a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


class AsgiService:
    """One ASGI app served by uvicorn on a pre-bound socket: ``async with`` in tests and ``wcnotify up``,
    :meth:`run` (blocking, until Ctrl-C) for a service's own CLI command."""

    def __init__(self, app: Any, host: str, port: int, *, name: str, **uvicorn_options: Any) -> None:
        self.app = app
        self.host = host
        self.name = name
        self.sock = bind_socket(host, port)
        self.port: int = self.sock.getsockname()[1]
        self._options = uvicorn_options
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{client_host(self.host)}:{self.port}"

    def _uvicorn(self, log_level: str = "warning") -> uvicorn.Server:
        # the loop of wcnotify.event_loop (uvloop unless overridden) for run(); under ``async with`` the
        # caller's loop is used whatever this says. HTTP is parsed by h11 even where httptools is installed
        # (uvicorn would pick it): h11 refuses a request head past 16 KiB, httptools (llhttp) buffers one without
        # bound, so a client that never ends its headers could grow the process (test_attack_matrix.py)
        options = {"lifespan": "on", "access_log": False, "loop": event_loop.loop_name(), "http": "h11",
                   "timeout_graceful_shutdown": spec.SERVICE_SHUTDOWN_GRACE, **self._options}
        return uvicorn.Server(uvicorn.Config(self.app, log_level=log_level, **options))

    async def start(self, timeout: float = 30) -> None:
        self._server = self._uvicorn()
        self._task = asyncio.create_task(self._server.serve(sockets=[self.sock]))
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the startup error
                raise RuntimeError(f"{self.name} stopped during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not start within {timeout} s")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self.sock.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def run(self, log_level: str = "info") -> None:
        """Serve until interrupted."""
        self._uvicorn(log_level).run(sockets=[self.sock])
