"""The one source of JSON-RPC ids for requests this notify server process sends to wallets.

Notifications (delivery workers) and subscriptions-changed messages (wallet handlers) reach the same JS
clients, which key their request history by id alone, so both must draw from one generator
(:class:`wcnotify.protocol.jsonrpc.PayloadIds`).
"""

from __future__ import annotations

import secrets
import time

from wcnotify.protocol.jsonrpc import PayloadIds

_IDS = PayloadIds(secrets.randbelow(1000))


def next_payload_id(now_ms: int | None = None) -> int:
    return _IDS.next(int(time.time() * 1000) if now_ms is None else now_ms)
