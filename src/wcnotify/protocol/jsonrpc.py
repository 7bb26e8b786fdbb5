"""JSON-RPC 2.0 messages as WalletConnect uses them: requests, results, errors and ids.

Rules (JSON-RPC 2.0; walletconnect-utils ``jsonrpc/utils/src/format.ts``; protocol.md §2):

* Every message is one JSON object with ``"jsonrpc": "2.0"`` and an ``id``. WalletConnect never sends
  notifications (requests without an id) nor batches, so both are refused.
* An id is a JSON integer or a string and keeps its JSON type: JS sends relay ids as strings
  (``getBigIntRpcId``) and client-to-client ids as numbers (``payloadId``), and a response must echo the
  id exactly. ``true``/``false`` and non-integral numbers are not ids. ``null`` is an id only in an error
  answering a message whose id could not be read, as JSON-RPC 2.0 requires.
* A request has a non-empty string ``method`` and, when present, ``params`` that is an object or an array.
  A response has exactly one of ``result`` (any JSON, ``null`` included) and ``error``
  (``{code: int, message: str, data?: any}``). Unknown members are ignored.
* Encoding is compact orjson with the member order the JS clients write: ``id, jsonrpc, method, params`` /
  ``id, jsonrpc, result`` / ``id, jsonrpc, error``. An error ``data`` of ``None`` is left out, so
  ``"data": null`` on the wire reads back as absent.

A malformed message raises :class:`JsonRpcError`, which carries the code to answer with and, when it could
be read, the offending id, so a server can reply with :meth:`JsonRpcError.to_error` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from wcnotify.spec import (
    BIG_INT_RPC_ID_ENTROPY_DIGITS,
    JSONRPC_VERSION,
    PAYLOAD_ID_ENTROPY_DIGITS,
    RELAY_MAX_RPC_ID,
    RELAY_RPC_ID_COUNTER_BITS,
    RelayError,
)

JsonRpcId = int | str


def is_rpc_id(value: object) -> bool:
    """True for an int (but not a bool, which Python counts as one) or a str."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _check_id(value: object, allow_none: bool = False) -> None:
    if not (is_rpc_id(value) or (allow_none and value is None)):
        raise TypeError(f"a JSON-RPC id must be an int or a str, not {type(value).__name__}")


@dataclass(frozen=True)
class Request:
    """A call. ``params`` of ``None`` means the member is absent."""

    id: JsonRpcId
    method: str
    params: Any = None

    def __post_init__(self) -> None:
        _check_id(self.id)


@dataclass(frozen=True)
class Result:
    """A successful response; ``result`` may be any JSON value, ``None`` included."""

    id: JsonRpcId
    result: Any

    def __post_init__(self) -> None:
        _check_id(self.id)


@dataclass(frozen=True)
class Error:
    """An error response. ``id`` is ``None`` only when the failed message's id could not be read."""

    id: JsonRpcId | None
    code: int
    message: str
    data: Any = None

    def __post_init__(self) -> None:
        _check_id(self.id, allow_none=True)


Message = Request | Result | Error
Response = Result | Error


class JsonRpcError(ValueError):
    """A message that is not valid JSON-RPC 2.0.

    ``code`` is the JSON-RPC error code to answer with (parse error or invalid request) and ``id`` the
    message's id when it could be read, so the answer reaches the right pending call.
    """

    def __init__(self, code: int, message: str, id: JsonRpcId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id

    def to_error(self) -> Error:
        return Error(self.id, int(self.code), self.message)


# ------------------------------------------------------------------------------------------------ ids


def payload_id(now_ms: int, entropy: int) -> int:
    """JS ``payloadId()``: ``now_ms * 1000 + entropy`` with ``0 <= entropy < 1000``.

    The id of client-to-client payloads (Sync records, Notify requests). The last-writer-wins rule of the
    Sync API compares these, so they must grow with the clock.
    """
    return _timestamp_id(now_ms, entropy, PAYLOAD_ID_ENTROPY_DIGITS)


class PayloadIds:
    """:func:`payload_id` values that never repeat from one source, and still grow with the clock.

    JS clients keep their request history keyed by id alone, across topics: two messages to one wallet with
    the same id (a notification and a subscriptions-changed in the same second) make the second one look
    like a replay, answered with the wrong tag or not at all. Ids here are ``max(previous + 1, now_ms *
    1000 + offset)``: unique within the process whatever the burst, and ``offset`` (random per process)
    makes a clash between two replicas in the same millisecond unlikely.
    """

    def __init__(self, offset: int = 0) -> None:
        if not 0 <= offset < 10**PAYLOAD_ID_ENTROPY_DIGITS:
            raise ValueError("offset must fit in the entropy digits")
        self._offset = offset
        self._last = 0

    def next(self, now_ms: int) -> int:
        self._last = max(self._last + 1, payload_id(now_ms, self._offset))
        return self._last


def big_int_rpc_id(now_ms: int, entropy: int) -> int:
    """JS ``getBigIntRpcId()``: ``now_ms * 10**6 + entropy`` with ``0 <= entropy < 10**6``.

    The id clients put on their relay requests (19 digits today, above 2**53, which is why JS sends it as a
    string). JS computes it in floating point and so loses the low bits; this returns the exact integer,
    which is just as valid an id.
    """
    return _timestamp_id(now_ms, entropy, BIG_INT_RPC_ID_ENTROPY_DIGITS)


def _timestamp_id(now_ms: int, entropy: int, digits: int) -> int:
    scale: int = 10**digits
    if now_ms < 0:
        raise ValueError("now_ms must not be negative")
    if not 0 <= entropy < scale:
        raise ValueError(f"entropy must be in [0, {scale})")
    return now_ms * scale + entropy


def relay_id(now_ms: int, counter: int) -> int:
    """The id of a request the relay itself sends (``irn_subscription``): ``(now_ms << 8) | counter % 256``.

    Rust ``MessageIdGenerator`` layout. It stays below 2**53 (about 49 bits today, until the year 3084) so
    that a JS client, which reads JSON numbers as doubles, echoes it back unchanged in its response; the
    ``getBigIntRpcId`` layout would not survive that. The caller increments ``counter``; more than 256 ids
    in one millisecond repeat.
    """
    if now_ms < 0:
        raise ValueError("now_ms must not be negative")
    value = (now_ms << RELAY_RPC_ID_COUNTER_BITS) | (counter % (1 << RELAY_RPC_ID_COUNTER_BITS))
    if value > RELAY_MAX_RPC_ID:
        raise ValueError(f"now_ms {now_ms} is too large for a relay id <= 2**53")
    return value


# -------------------------------------------------------------------------------------------- parsing


def parse_message(data: bytes | str, max_bytes: int | None = None) -> Message:
    """Parse one JSON-RPC 2.0 message, refusing anything the rules at the top of this module exclude."""
    raw = _to_bytes(data)
    if max_bytes is not None and len(raw) > max_bytes:
        raise JsonRpcError(RelayError.INVALID_REQUEST, f"message is {len(raw)} bytes, over the limit of {max_bytes}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JsonRpcError(RelayError.PARSE_ERROR, f"not JSON: {exc}") from exc
    return parse_object(obj)


def parse_object(obj: object) -> Message:
    """Validate an already decoded JSON value as a JSON-RPC 2.0 message."""
    if isinstance(obj, list):
        raise JsonRpcError(RelayError.INVALID_REQUEST, "batch messages are not supported")
    if not isinstance(obj, dict):
        raise JsonRpcError(RelayError.INVALID_REQUEST, f"expected a JSON object, got {_kind(obj)}")
    if "id" not in obj:
        raise JsonRpcError(RelayError.INVALID_REQUEST, "missing id (notifications are not supported)")
    msg_id = obj["id"]
    is_error = "error" in obj and "method" not in obj and "result" not in obj
    if not (is_rpc_id(msg_id) or (msg_id is None and is_error)):
        raise JsonRpcError(RelayError.INVALID_REQUEST, f"id must be an integer or a string, not {_kind(msg_id)}")

    def invalid(message: str) -> JsonRpcError:
        return JsonRpcError(RelayError.INVALID_REQUEST, message, msg_id)

    if obj.get("jsonrpc") != JSONRPC_VERSION:
        raise invalid(f'"jsonrpc" must be "{JSONRPC_VERSION}"')
    if "method" in obj:
        if "result" in obj or "error" in obj:
            raise invalid("a request must not carry result or error")
        method, params = obj["method"], obj.get("params")
        if not isinstance(method, str) or not method:
            raise invalid("method must be a non-empty string")
        if "params" in obj and not isinstance(params, dict | list):
            raise invalid(f"params must be an object or an array, not {_kind(params)}")
        return Request(msg_id, method, params)
    if "result" in obj:
        if "error" in obj:
            raise invalid("a response must not carry both result and error")
        return Result(msg_id, obj["result"])
    if "error" in obj:
        return _parse_error(msg_id, obj["error"], invalid)
    raise invalid("neither a request (method) nor a response (result or error)")


def _parse_error(msg_id: JsonRpcId | None, error: object, invalid: Callable[[str], JsonRpcError]) -> Error:
    if not isinstance(error, dict):
        raise invalid(f"error must be an object, not {_kind(error)}")
    code, message = error.get("code"), error.get("message")
    if not isinstance(code, int) or isinstance(code, bool):
        raise invalid(f"error.code must be an integer, not {_kind(code)}")
    if not isinstance(message, str):
        raise invalid(f"error.message must be a string, not {_kind(message)}")
    return Error(msg_id, code, message, error.get("data"))


def _to_bytes(data: bytes | str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        try:
            return data.encode()
        except UnicodeEncodeError as exc:  # lone surrogates
            raise JsonRpcError(RelayError.PARSE_ERROR, "not valid UTF-8 text") from exc
    raise TypeError(f"expected bytes or str, got {type(data).__name__}")


def _kind(value: object) -> str:
    """A JSON name for a value's type, for error messages that say what was found."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# ------------------------------------------------------------------------------------------- encoding


def to_object(msg: Message) -> dict[str, Any]:
    """The JSON object of a message, members in the order the JS clients write them."""
    if isinstance(msg, Request):
        obj: dict[str, Any] = {"id": msg.id, "jsonrpc": JSONRPC_VERSION, "method": msg.method}
        if msg.params is not None:
            obj["params"] = msg.params
        return obj
    if isinstance(msg, Result):
        return {"id": msg.id, "jsonrpc": JSONRPC_VERSION, "result": msg.result}
    error: dict[str, Any] = {"code": msg.code, "message": msg.message}
    if msg.data is not None:
        error["data"] = msg.data
    return {"id": msg.id, "jsonrpc": JSONRPC_VERSION, "error": error}


def encode(msg: Message) -> bytes:
    """Compact JSON bytes of a message (orjson)."""
    return orjson.dumps(to_object(msg))
