"""uvicorn's sans-I/O WebSocket protocol, with read flow control that pauses only past a backlog.

uvicorn pauses reading the socket as soon as one received message waits for the application, and resumes
when the application has taken it: two ``epoll_ctl`` system calls, and the selector bookkeeping around them,
for every frame a client sends. A relay receives one ack frame per push, so at a fan-out of 10,000 that is
20,000 extra system calls per notification, on the path that decides the relay's latency at moderate load.

Here reading pauses only when ``READ_HIGH_WATER`` messages are waiting (a client sending faster than its
session handles), and resumes, as before, once the application has drained them. The bound on what one
connection can queue in memory stays: at most ``READ_HIGH_WATER`` messages plus one read buffer.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from wcnotify import spec


class RelayWebSocketProtocol(WebSocketsSansIOProtocol):
    """See the module docstring; everything else is uvicorn's ``websockets-sansio`` implementation."""

    READ_HIGH_WATER = spec.RELAY_WS_READ_HIGH_WATER

    def send_receive_event_to_app(self) -> None:
        if self.read_paused or self.queue.qsize() + 1 >= self.READ_HIGH_WATER:
            super().send_receive_event_to_app()  # queues it and pauses reading (if not paused already)
            return
        # below the mark: let the base class queue the message, but keep it from pausing the transport
        self.read_paused = True
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = False
