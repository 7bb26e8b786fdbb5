"""uvicorn's sans-I/O WebSocket protocol, with the relay's frames going straight between socket and session.

Once the relay has accepted a connection, frames skip ASGI in both directions: about a fifth less relay CPU
per routed message, and a shorter latency tail (docs/performance.md has the figures).

* **Reading.** Through ASGI each frame is queued, a task is woken, and the frame reaches the session one
  event-loop pass later; and uvicorn pauses and resumes reading the socket around every frame (two
  ``epoll_ctl`` system calls per ack, and a relay receives one ack per push). Here the protocol hands each
  frame to the session's handler (:meth:`attach`) at once, inside ``data_received``, outside any task. The
  relay attaches only over the memory mailbox, which never suspends and never needs a current task (redis-py
  and SQLAlchemy's pool use ``asyncio.timeout``, which does: ``Mailbox.runs_outside_a_task``). A handler that
  suspends all the same is finished by a task, and frames that arrive meanwhile wait in order, reading
  pausing once ``READ_HIGH_WATER`` of them wait. Python 3.12's eager tasks do this with a task from the start;
  on 3.11 it is done here. :meth:`detach` stops it and waits for the frame in hand, so the session is closed
  only once nothing is running in it.
* **Writing.** An ASGI ``websocket.send`` is a coroutine per frame (awaited by a writer task, a dict, the
  frame decoded to text and encoded back), then one ``send()`` system call per frame. The relay's frames
  are already UTF-8 JSON bytes. :meth:`send_frame` frames them at once and writes everything framed for the
  connection during one event-loop pass with one ``transport.write`` (a backlog page is one write).

The protocol offers itself in the scope under :data:`DIRECT_SEND`; any other server or uvicorn implementation
gets the plain ASGI path (``server.py``). Back-pressure is unchanged: once the transport's buffer is over its
high-water mark (``pause_writing``), frames wait in a queue of at most ``outbox_limit``; past it the client is
closed with 1013 (what it missed is still in the mailbox, and comes back when it subscribes again), at once,
rather than after a drain that a client which stopped reading would never allow.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request

from wcnotify import spec

log = logging.getLogger("wcnotify.relay")

DIRECT_SEND = "wcnotify.direct_send"  # scope["extensions"] key: the RelayWebSocketProtocol of the connection

Frame = bytes | str
FrameHandler = Callable[[Frame], Coroutine[Any, Any, None]]

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

    # -- reading without ASGI

    _handler: FrameHandler | None = None
    _inbox: collections.deque[Frame] | None = None  # frames that arrived while a handler call was suspended
    _finisher: asyncio.Task[None] | None = None  # finishes a suspended handler call, then the inbox

    def attach(self, handler: FrameHandler) -> None:
        """From now on, hand every received message to ``handler``, one at a time, in arrival order."""
        self._handler = handler

    async def detach(self) -> None:
        """Hand no more messages to the handler, and return once the one in hand (if any) is finished."""
        self._handler = None
        self._inbox = None
        finisher = self._finisher
        if finisher is not None:
            with contextlib.suppress(Exception):  # logged by the finisher; a cancellation of ours goes on
                await asyncio.shield(finisher)

    def send_receive_event_to_app(self) -> None:
        if self._handler is None or self.close_sent:
            self._queue_for_asgi()
            return
        data: Frame = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.curr_msg_data_type == "text":
            try:
                data = data.decode()  # type: ignore[union-attr]
            except UnicodeDecodeError:  # as the base class does
                self.logger.exception("Invalid UTF-8 sequence received from client.")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        if self._finisher is not None:  # a suspended call is in hand: wait behind it
            inbox = self._inbox
            if inbox is None:
                inbox = self._inbox = collections.deque()
            inbox.append(data)
            if len(inbox) >= self.READ_HIGH_WATER and not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()
            return
        call = self._start(data)
        if call is not None:
            self._finisher = self.loop.create_task(self._finish(*call))

    def _start(self, data: Frame) -> tuple[Coroutine[Any, Any, None], Any] | None:
        """Run the handler on ``data`` up to its first suspension: None if it finished, else the coroutine
        and what it is waiting for."""
        handler = self._handler
        if handler is None:
            return None
        coro = handler(data)
        try:
            return coro, coro.send(None)
        except StopIteration:
            return None
        except Exception:
            log.exception("relay: handling a frame failed")
            return None

    async def _finish(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        """Finish the suspended call ``coro`` (it yielded ``waiting``, a future or None), then every frame
        that arrived meanwhile, in order; then let frames be handled at once again."""
        try:
            while True:
                try:
                    await _wait_for(waiting, coro)
                    await _Resume(coro)
                except Exception:
                    log.exception("relay: handling a frame failed")
                call = None
                while call is None:
                    inbox = self._inbox
                    if not inbox:
                        return
                    call = self._start(inbox.popleft())
                coro, waiting = call
        finally:
            self._finisher = None
            if self.read_paused and not self.close_sent and not self.transport.is_closing():
                self.read_paused = False
                self.transport.resume_reading()

    def _queue_for_asgi(self) -> None:
        """The ASGI path (before :meth:`attach`, or without it): queue the message for ``receive()``."""
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


async def _wait_for(waiting: Any, coro: Coroutine[Any, Any, None]) -> None:
    """Wait for what a coroutine suspended on with its first ``send(None)``, as ``Task`` does for the
    coroutines it runs: a future (its outcome is left for the coroutine to read), or None for a bare yield.
    If the waiting task is cancelled itself, the coroutine is closed and the cancellation goes on."""
    if waiting is None:
        await asyncio.sleep(0)
        return
    # the coroutine's own await marked the future as waited on; a second await must start unmarked
    waiting._asyncio_future_blocking = False
    try:
        await waiting
    except asyncio.CancelledError:
        if not waiting.cancelled():  # we were cancelled, not the future: the call will not be finished
            coro.close()
            raise
    except Exception:
        pass  # the coroutine gets the exception when it resumes


class _Resume:
    """Awaitable that resumes a coroutine already started with ``send(None)``. A plain ``await coro`` is
    refused ("coroutine is being awaited already": it is suspended inside its own await); going through
    ``__await__`` resumes it where it stopped."""

    __slots__ = ("coro",)

    def __init__(self, coro: Coroutine[Any, Any, None]) -> None:
        self.coro = coro

    def __await__(self) -> Any:
        return self.coro.__await__()
