"""The notify server as a network service: binds, builds the HTTP app around a :class:`NotifyService`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from wcnotify import spec
from wcnotify.notify.api import BodyLimit, build_app
from wcnotify.notify.service import NotifyConfig, NotifyService, describe
from wcnotify.serving import AsgiService, client_host

__all__ = ["NotifyConfig", "NotifyServer", "NotifyService", "describe"]


class NotifyServer(AsgiService):
    """A running notify server: ``async with NotifyServer(config) as server: server.url …``."""

    def __init__(self, config: NotifyConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        # bind first: the public URL defaults to the port actually bound (port 0 in tests)
        super().__init__(None, config.host, config.port, name="notify server")
        public = config.public_url or f"http://{client_host(config.host)}:{self.port}"
        self.service = NotifyService(config, public, clock=clock)
        self.app = BodyLimit(build_app(self.service), spec.NOTIFY_MAX_BODY_BYTES)

    async def wait_relay(self, timeout: float = 10) -> None:
        await asyncio.wait_for(self.service.relay_ready.wait(), timeout)
