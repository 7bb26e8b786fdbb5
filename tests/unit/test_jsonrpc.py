"""JSON-RPC 2.0 parsing, encoding and ids (protocol/jsonrpc.py)."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wcnotify.protocol.jsonrpc import (
    Error,
    JsonRpcError,
    PayloadIds,
    Request,
    Result,
    big_int_rpc_id,
    encode,
    parse_message,
    parse_object,
    payload_id,
    relay_id,
)
from wcnotify.spec import RELAY_MAX_RPC_ID, RELAY_MIN_RPC_ID, RelayError

NOW_MS = 1_700_000_000_000

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
rpc_ids = st.integers(-(2**63), 2**64 - 1) | st.text(max_size=24)
params = st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=4) | st.lists(json_values, max_size=4)
messages = (
    st.builds(Request, rpc_ids, st.text(min_size=1, max_size=30), params)
    | st.builds(Result, rpc_ids, json_values)
    | st.builds(Error, rpc_ids | st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=30), json_values)
)
# objects built from the JSON-RPC member names, so random input often gets past the first checks
member_values = json_values | st.sampled_from(["2.0", 1, "1", {"code": 1, "message": "m"}, [], {}])
near_messages = st.dictionaries(
    st.sampled_from(["id", "jsonrpc", "method", "params", "result", "error", "data"]), member_values, max_size=6
)


def _code(data: bytes | str) -> int:
    with pytest.raises(JsonRpcError) as info:
        parse_message(data)
    return info.value.code


# ---------------------------------------------------------------------------------------------- ids


def test_payload_ids_never_repeat_and_follow_the_clock():
    ids = PayloadIds(offset=7)
    burst = [ids.next(NOW_MS) for _ in range(2500)]  # more than 1000 in one millisecond
    assert burst[0] == payload_id(NOW_MS, 7) and burst == sorted(set(burst))
    assert ids.next(NOW_MS - 5) == burst[-1] + 1  # a clock that steps back does not repeat an id
    later = NOW_MS + 60_000
    assert ids.next(later) == payload_id(later, 7)
    with pytest.raises(ValueError):
        PayloadIds(offset=1000)


def test_payload_id_is_ms_times_1000_plus_three_digits():
    assert payload_id(NOW_MS, 0) == 1_700_000_000_000_000
    assert payload_id(NOW_MS, 999) == 1_700_000_000_000_999
    assert payload_id(NOW_MS, 42) < payload_id(NOW_MS + 1, 0)
    for bad in (-1, 1000):
        with pytest.raises(ValueError, match="entropy"):
            payload_id(NOW_MS, bad)
    with pytest.raises(ValueError, match="negative"):
        payload_id(-1, 0)


def test_big_int_rpc_id_is_ms_times_10_6_plus_six_digits():
    assert big_int_rpc_id(NOW_MS, 123_456) == 1_700_000_000_000_123_456
    assert len(str(big_int_rpc_id(NOW_MS, 0))) == 19  # the spec text's "19 digits"
    with pytest.raises(ValueError, match="entropy"):
        big_int_rpc_id(NOW_MS, 10**6)


def test_relay_id_layout_and_bounds():
    assert relay_id(NOW_MS, 5) == (NOW_MS << 8) | 5
    assert relay_id(NOW_MS, 256) == relay_id(NOW_MS, 0)  # the counter is a u8
    ids = {relay_id(NOW_MS, counter) for counter in range(256)}
    assert len(ids) == 256
    assert all(RELAY_MIN_RPC_ID <= i <= RELAY_MAX_RPC_ID for i in ids)
    # JS reads JSON numbers as doubles: the id must survive that
    assert all(int(float(i)) == i for i in ids)
    with pytest.raises(ValueError, match="2\\*\\*53"):
        relay_id(2**46, 0)
    with pytest.raises(ValueError, match="negative"):
        relay_id(-1, 0)


@given(st.integers(0, 2**45 - 1), st.integers(0, 2**45 - 1), st.integers(0, 255), st.integers(0, 255))
def test_relay_ids_order_by_time_then_counter(ms1, ms2, c1, c2):
    if (ms1, c1) < (ms2, c2):
        assert relay_id(ms1, c1) < relay_id(ms2, c2)
    assert relay_id(ms1, c1) <= RELAY_MAX_RPC_ID


# ------------------------------------------------------------------------------------ round trips


def test_encode_member_order_matches_js():
    assert encode(Request(1, "irn_subscribe", {"topic": "t"})) == (
        b'{"id":1,"jsonrpc":"2.0","method":"irn_subscribe","params":{"topic":"t"}}'
    )
    assert encode(Result("17", True)) == b'{"id":"17","jsonrpc":"2.0","result":true}'
    assert encode(Result(2, None)) == b'{"id":2,"jsonrpc":"2.0","result":null}'
    assert encode(Error(3, -32600, "bad")) == b'{"id":3,"jsonrpc":"2.0","error":{"code":-32600,"message":"bad"}}'
    assert encode(Error(None, -32000, "x", "TtlTooShort")) == (
        b'{"id":null,"jsonrpc":"2.0","error":{"code":-32000,"message":"x","data":"TtlTooShort"}}'
    )
    assert encode(Request(4, "m")) == b'{"id":4,"jsonrpc":"2.0","method":"m"}'


def test_ids_keep_their_json_type():
    as_string = parse_message(b'{"id":"1700000000000123456","jsonrpc":"2.0","method":"irn_publish","params":{}}')
    as_number = parse_message(b'{"id":1700000000000123,"jsonrpc":"2.0","result":true}')
    assert as_string.id == "1700000000000123456"
    assert as_number.id == 1700000000000123
    assert b'"id":"1700000000000123456"' in encode(as_string)
    assert b'"id":1700000000000123,' in encode(as_number)


def test_parses_each_kind():
    assert parse_message('{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}') == Request(1, "m", [1])
    assert parse_message(b'{"jsonrpc":"2.0","id":1,"result":{"a":1}}') == Result(1, {"a": 1})
    assert parse_message(b'{"jsonrpc":"2.0","id":1,"error":{"code":5000,"message":"User rejected."}}') == Error(
        1, 5000, "User rejected."
    )
    assert parse_message(b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"p"}}') == Error(
        None, -32700, "p"
    )
    # unknown members are ignored
    assert parse_message(b'{"jsonrpc":"2.0","id":1,"result":1,"extra":2}') == Result(1, 1)


@given(messages)
def test_round_trip(msg):
    back = parse_message(encode(msg))
    assert back == msg
    assert type(back.id) is type(msg.id)


# ---------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", RelayError.PARSE_ERROR),
        (b"{", RelayError.PARSE_ERROR),
        (b"NaN", RelayError.PARSE_ERROR),
        (b"\xff\xfe", RelayError.PARSE_ERROR),
        ('"\ud800"', RelayError.PARSE_ERROR),
        (b"[]", RelayError.INVALID_REQUEST),
        (b'[{"id":1,"jsonrpc":"2.0","method":"m"}]', RelayError.INVALID_REQUEST),
        (b"42", RelayError.INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","method":"m"}', RelayError.INVALID_REQUEST),
        (b'{"id":true,"jsonrpc":"2.0","method":"m"}', RelayError.INVALID_REQUEST),
        (b'{"id":1.5,"jsonrpc":"2.0","method":"m"}', RelayError.INVALID_REQUEST),
        (b'{"id":18446744073709551616,"jsonrpc":"2.0","method":"m"}', RelayError.INVALID_REQUEST),
        (b'{"id":null,"jsonrpc":"2.0","method":"m"}', RelayError.INVALID_REQUEST),
        (b'{"id":null,"jsonrpc":"2.0","result":1}', RelayError.INVALID_REQUEST),
        (b'{"id":[1],"jsonrpc":"2.0","method":"m"}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"method":"m"}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":"1.0","method":"m"}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":2.0,"method":"m"}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":"2.0","method":""}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":"2.0","method":7}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":"2.0","method":"m","params":null}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":"2.0","method":"m","params":"x"}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":"2.0","method":"m","result":1}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"m"}}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":"2.0"}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":"2.0","error":"oops"}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":"2.0","error":{"code":"1","message":"m"}}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":"2.0","error":{"code":false,"message":"m"}}', RelayError.INVALID_REQUEST),
        (b'{"id":1,"jsonrpc":"2.0","error":{"code":1}}', RelayError.INVALID_REQUEST),
    ],
)
def test_refuses_malformed(data, code):
    assert _code(data) == code


def test_error_carries_the_id_when_it_was_readable():
    with pytest.raises(JsonRpcError) as info:
        parse_message(b'{"id":"abc","jsonrpc":"2.0","method":5}')
    assert info.value.id == "abc"
    assert info.value.to_error() == Error("abc", RelayError.INVALID_REQUEST, "method must be a non-empty string")
    with pytest.raises(JsonRpcError) as info:
        parse_message(b"{")
    assert info.value.id is None
    assert encode(info.value.to_error()).startswith(b'{"id":null,"jsonrpc":"2.0","error":{"code":-32700,')


def test_max_bytes():
    data = encode(Request(1, "irn_publish", {"message": "x" * 100}))
    assert parse_message(data, max_bytes=len(data)) == Request(1, "irn_publish", {"message": "x" * 100})
    with pytest.raises(JsonRpcError, match="over the limit") as info:
        parse_message(data, max_bytes=len(data) - 1)
    assert info.value.code == RelayError.INVALID_REQUEST
    text = '{"id":1,"jsonrpc":"2.0","result":"é"}'  # the limit counts UTF-8 bytes, not characters
    with pytest.raises(JsonRpcError):
        parse_message(text, max_bytes=len(text))


def test_constructors_refuse_non_ids():
    for bad in (True, 1.0, None, b"1"):
        with pytest.raises(TypeError):
            Request(bad, "m")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Result(bad, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Error(False, 1, "m")


# ------------------------------------------------------------------------------------------- fuzzing


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_jsonrpc_error(data):
    try:
        parse_message(data)
    except JsonRpcError as exc:
        assert exc.code in (RelayError.PARSE_ERROR, RelayError.INVALID_REQUEST)


@given(st.text(max_size=200))
def test_random_text_only_raise_jsonrpc_error(data):
    with contextlib.suppress(JsonRpcError):
        parse_message(data)


@given(json_values | near_messages)
def test_random_json_only_raises_jsonrpc_error_and_accepted_input_is_stable(obj):
    try:
        msg = parse_object(obj)
    except JsonRpcError as exc:
        assert exc.code == RelayError.INVALID_REQUEST
        return
    assert parse_message(encode(msg)) == msg
    assert parse_message(orjson.dumps(obj)) == msg
