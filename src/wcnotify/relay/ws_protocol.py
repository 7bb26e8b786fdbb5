"""uvicorn's sans-I/O WebSocket protocol, with the relay's frames written straight to the connection.

Two costs of going through ASGI that a relay pays per frame, and this subclass removes:

* **Reading.** uvicorn pauses reading the socket as soon as one received message waits for the application,
  and resumes when the application has taken it: two ``epoll_ctl`` system calls, and the selector
  bookkeeping around them, for every frame a client sends. A relay receives one ack frame per push, so at a
  fan-out of 10,000 that is 20,000 extra system calls per notification. Here reading pauses only when
  ``READ_HIGH_WATER`` messages are waiting (a client sending faster than its session handles), and resumes,
  as before, once the application has drained them. What one connection can queue in memory stays bounded:
  at most ``READ_HIGH_WATER`` messages plus one read buffer.
* **Writing.** An ASGI ``websocket.send`` is a coroutine per frame (awaited by a writer task, a dict, the
  frame decoded to text and encoded back), then one ``send()`` system call per frame. The relay's frames
  are already UTF-8 JSON bytes, and a push never has to wait for anything but the socket. So the protocol
  offers itself in the scope, under :data:`DIRECT_SEND`, and :meth:`send_frame` frames the bytes at once
  and writes everything framed during one event-loop pass with one ``transport.write`` (at a fan-out, a
  batch publish pushes to many connections in one pass; a client with many topics gets them in one write).

Back-pressure is unchanged: once the transport's buffer is over its high-water mark (``pause_writing``),
frames wait in a queue of at most ``outbox_limit``; past it the client is closed with 1013 (what it missed
is still in the mailbox, and comes back when it subscribes again), at once, rather than after a drain that
a client which stopped reading would never allow.
"""

from __future__ import annotations

import collections
import logging

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request

from wcnotify import spec

log = logging.getLogger("wcnotify.relay")

DIRECT_SEND = "wcnotify.direct_send"  # scope["extensions"] key: the RelayWebSocketProtocol of the connection

CLOSE_TOO_SLOW = (1013, "too slow: reconnect and subscribe again")


class RelayWebSocketProtocol(WebSocketsSansIOProtocol):
    """See the module docstring; everything else is uvicorn's ``websockets-sansio`` implementation."""

    READ_HIGH_WATER = spec.RELAY_WS_READ_HIGH_WATER

    # class defaults, so that an idle connection carries no extra instance attributes (memory per connection)
    outbox_limit = 20_000
    _waiting: collections.deque[bytes] | None = None  # frames held while the transport is paused for writing
    _flush_scheduled = False
    _overflowed = False

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # set only when the handshake goes on to the application
        if scope is not None:
            scope["extensions"][DIRECT_SEND] = self

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

    # -- writing without ASGI (used once the application has accepted the connection)

    def send_frame(self, frame: bytes) -> None:
        """Send ``frame`` (UTF-8 JSON) as a text frame, after every frame sent before it. Never blocks: a
        closed connection drops it; a slow one queues it, up to ``outbox_limit``, then is closed with 1013."""
        if self._overflowed or self.close_sent or self.disconnected:
            return
        if self._waiting is not None or not self.writable.is_set():
            waiting = self._waiting
            if waiting is None:
                waiting = self._waiting = collections.deque()
            if len(waiting) >= self.outbox_limit:
                self._close_too_slow()
            else:
                waiting.append(frame)
            return
        try:
            self.conn.send_text(frame)
        except InvalidState:  # the peer's close frame arrived; the disconnect is on its way to the app
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.conn.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(b"".join(data))  # may call pause_writing at once

    def resume_writing(self) -> None:
        super().resume_writing()
        waiting = self._waiting
        if waiting is None:
            return
        try:
            while waiting and self.writable.is_set() and not self.close_sent:
                self.conn.send_text(waiting.popleft())
                self._flush()
        except InvalidState:
            waiting.clear()
        if not waiting:
            self._waiting = None

    def _close_too_slow(self) -> None:
        """Close with 1013 now: drop what waits here, tell the application, send the close frame after what
        the transport already holds, and give the peer ``close_timeout`` to answer before the socket goes."""
        self._overflowed = True
        self._waiting = None
        if self.transport.is_closing():
            return
        code, reason = CLOSE_TOO_SLOW
        log.info("relay: closing a client that reads too slowly (%d frames waiting)", self.outbox_limit)
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        try:
            self.conn.send_close(code, reason)
        except InvalidState:
            self.transport.close()
            return
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)
