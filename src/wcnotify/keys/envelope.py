"""The keys server's response envelope, shared by the server (to write it) and the clients (to read it).

Every answer, success or not, is ``{"status": "SUCCESS"|"FAILURE", "error": {name, message}|null,
"value": …|null}`` (keys-server handlers/mod.rs). identity-keys reads ``value.cacao`` on a GET and only the
HTTP status otherwise, so the status code carries the outcome and ``error.name`` says which kind.
"""

from __future__ import annotations

from typing import Any

import orjson

from wcnotify.spec import KEYS_STATUS_FAILURE, KEYS_STATUS_SUCCESS, KeysErrorName


class KeysApiError(Exception):
    """A request the keys server refuses: the HTTP status, ``error.name`` and a message for the caller."""

    def __init__(self, status: int, name: KeysErrorName | str, message: str) -> None:
        super().__init__(f"{status} {name}: {message}")
        self.status = status
        self.name = str(name)
        self.message = message


def success_body(value: Any = None) -> bytes:
    return orjson.dumps({"status": KEYS_STATUS_SUCCESS, "error": None, "value": value})


def failure_body(name: str, message: str) -> bytes:
    return orjson.dumps({"status": KEYS_STATUS_FAILURE, "error": {"name": name, "message": message}, "value": None})


def parse_envelope(status: int, body: bytes) -> Any:
    """The ``value`` of a SUCCESS answer; :class:`KeysApiError` for a FAILURE or anything unreadable."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or data.get("status") not in (KEYS_STATUS_SUCCESS, KEYS_STATUS_FAILURE):
        snippet = body[:200].decode(errors="replace")
        raise KeysApiError(status, KeysErrorName.INTERNAL, f"not a keys server answer (HTTP {status}): {snippet!r}")
    if data["status"] == KEYS_STATUS_SUCCESS and 200 <= status < 300:
        return data.get("value")
    error = data.get("error")
    if not isinstance(error, dict):
        error = {}
    name, message = error.get("name"), error.get("message")
    raise KeysApiError(
        status,
        name if isinstance(name, str) else KeysErrorName.INTERNAL,
        message if isinstance(message, str) else f"HTTP {status} without an error message",
    )
