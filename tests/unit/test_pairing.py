"""wc: pairing URIs (protocol/pairing.py)."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wcnotify.protocol.pairing import PairingError, PairingUri, new_pairing, parse
from wcnotify.spec import PAIRING_TTL

# walletconnect-monorepo packages/utils/test (uri.spec.ts, shared/values.ts): the topic is not sha256(symKey)
JS_TOPIC = "c9e6d30fb34afe70a15c14e9337ba8e4d5a35dd695c39b94884b0ee60c69d168"
JS_SYM_KEY = "0653ca620c7b4990392e1c53c4a51c14a2840cd20f0f1524cf435b17b6fe988c"
JS_URI = f"wc:{JS_TOPIC}@2?relay-protocol=irn&symKey={JS_SYM_KEY}"
# the specs' example, with an unencoded ", " list as written there
SPEC_URI = (
    "wc:7f6e504bfad60b485450578e05678ed3e8e8c4751d3c6160be17160d63ec90f9@2"
    "?symKey=587d5484ce2a2a6ee3ba1962fdd7e8588e06200c46823bd18fbd67def96ad303"
    "&methods=wc_sessionPropose, wc_sessionAuthenticate&relay-protocol=irn"
)


def test_js_vector_parses_and_formats_identically():
    uri = parse(JS_URI)
    assert uri == PairingUri(JS_TOPIC, 2, bytes.fromhex(JS_SYM_KEY), "irn")
    assert uri.topic != hashlib.sha256(uri.sym_key).hexdigest()
    assert (uri.version, uri.relay_protocol, uri.relay_data) == (2, "irn", None)
    assert (uri.expiry_timestamp, uri.methods) == (None, ())
    assert uri.format() == JS_URI == str(uri)


def test_spec_example_with_methods():
    uri = parse(SPEC_URI)
    assert uri.methods == ("wc_sessionPropose", "wc_sessionAuthenticate")
    assert uri.format() == (
        "wc:7f6e504bfad60b485450578e05678ed3e8e8c4751d3c6160be17160d63ec90f9@2"
        "?methods=wc_sessionPropose%2Cwc_sessionAuthenticate&relay-protocol=irn"
        "&symKey=587d5484ce2a2a6ee3ba1962fdd7e8588e06200c46823bd18fbd67def96ad303"
    )


def test_all_parameters_sorted_as_js_writes_them():
    uri = PairingUri(JS_TOPIC, 2, bytes.fromhex(JS_SYM_KEY), "irn", 1_700_000_300, ("wc_pushPropose",), "ab cd")
    assert uri.format() == (
        f"wc:{JS_TOPIC}@2?expiryTimestamp=1700000300&methods=wc_pushPropose&relay-data=ab%20cd"
        f"&relay-protocol=irn&symKey={JS_SYM_KEY}"
    )
    assert parse(uri.format()) == uri


def test_lenient_forms():
    assert parse(f"wc://{JS_TOPIC}@2?relay-protocol=irn&symKey={JS_SYM_KEY}") == parse(JS_URI)
    assert parse(f"  {JS_URI}\n") == parse(JS_URI)
    assert parse(JS_URI.replace(JS_SYM_KEY, JS_SYM_KEY.upper())) == parse(JS_URI)
    assert parse(JS_URI + "&unknown=1&&relay-foo=bar") == parse(JS_URI)
    assert parse(JS_URI + "&relay-data=") == parse(JS_URI)
    old = parse(JS_URI + "&methods=[wc_sessionPropose],[wc_authRequest,wc_authBatchRequest]")
    assert old.methods == ("wc_sessionPropose", "wc_authRequest", "wc_authBatchRequest")


@pytest.mark.parametrize(
    ("uri", "what"),
    [
        (f"https:{JS_TOPIC}@2?relay-protocol=irn&symKey={JS_SYM_KEY}", "start with"),
        (f"{JS_TOPIC}@2?relay-protocol=irn&symKey={JS_SYM_KEY}", "start with"),
        (f"wc:{JS_TOPIC}?relay-protocol=irn&symKey={JS_SYM_KEY}", "@version"),
        (f"wc:{JS_TOPIC.upper()}@2?relay-protocol=irn&symKey={JS_SYM_KEY}", "topic"),
        (f"wc:{JS_TOPIC[:-2]}@2?relay-protocol=irn&symKey={JS_SYM_KEY}", "topic"),
        (f"wc:{JS_TOPIC}@1?relay-protocol=irn&symKey={JS_SYM_KEY}", "version"),
        (f"wc:{JS_TOPIC}@v2?relay-protocol=irn&symKey={JS_SYM_KEY}", "version"),
        (f"wc:{JS_TOPIC}@2?relay-protocol=irn", "missing symKey"),
        (f"wc:{JS_TOPIC}@2?relay-protocol=irn&symKey={JS_SYM_KEY[:-1]}", "symKey"),
        (f"wc:{JS_TOPIC}@2?relay-protocol=irn&symKey={JS_SYM_KEY[:-1]}g", "symKey"),
        (f"wc:{JS_TOPIC}@2?symKey={JS_SYM_KEY}", "missing relay-protocol"),
        (f"wc:{JS_TOPIC}@2?relay-protocol=&symKey={JS_SYM_KEY}", "missing relay-protocol"),
        (f"{JS_URI}&symKey={JS_SYM_KEY}", "more than once"),
        (f"{JS_URI}&expiryTimestamp=soon", "expiryTimestamp"),
        (f"{JS_URI}&expiryTimestamp=-1", "expiryTimestamp"),
        (f"{JS_URI}&expiryTimestamp=99999999999999999999", "expiryTimestamp"),
        (f"{JS_URI}&expiryTimestamp=9999999999999999", "expiryTimestamp"),
        (f"{JS_URI}&relay-data=%ff", "percent-encoded"),
    ],
)
def test_refuses_malformed(uri, what):
    with pytest.raises(PairingError, match=what):
        parse(uri)


def test_constructor_validates():
    key = bytes(32)
    for kwargs in (
        {"topic": "00" * 31},
        {"sym_key": bytes(31)},
        {"version": 1},
        {"relay_protocol": ""},
        {"relay_data": ""},
        {"expiry_timestamp": True},
        {"expiry_timestamp": -5},
        {"methods": ["wc_a"]},
        {"methods": ("a,b",)},
        {"methods": ("[a]",)},
        {"methods": ("",)},
    ):
        with pytest.raises(PairingError):
            PairingUri(**{"topic": "00" * 32, "version": 2, "sym_key": key, "relay_protocol": "irn", **kwargs})


def test_new_pairing_follows_the_js_client():
    key = bytes(range(32))
    uri = new_pairing(lambda n: key[:n], now=1_700_000_000, methods=["wc_pushPropose"])
    assert uri.sym_key == key
    assert uri.topic == hashlib.sha256(key).hexdigest()
    assert uri.expiry_timestamp == 1_700_000_000 + PAIRING_TTL
    assert (uri.relay_protocol, uri.methods, uri.version) == ("irn", ("wc_pushPropose",), 2)
    assert key.hex() not in repr(uri)
    assert parse(uri.format()) == uri


def test_expired():
    uri = new_pairing(bytes, now=1000, ttl=300)
    assert not uri.expired(1000) and not uri.expired(1300)
    assert uri.expired(1301)
    assert not parse(JS_URI).expired(2**40)


# ------------------------------------------------------------------------------------------ properties

method_names = st.text(st.characters(codec="utf-8", exclude_characters=","), min_size=1, max_size=12).filter(
    lambda m: m == m.strip(" \t[]")
)
pairings = st.builds(
    PairingUri,
    topic=st.binary(min_size=32, max_size=32).map(bytes.hex),
    version=st.just(2),
    sym_key=st.binary(min_size=32, max_size=32),
    expiry_timestamp=st.none() | st.integers(0, 2**53 - 1),
    relay_protocol=st.text(st.characters(codec="utf-8"), min_size=1, max_size=10),
    relay_data=st.none() | st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
    methods=st.lists(method_names, max_size=4).map(tuple),
)


@given(pairings)
def test_round_trip(uri):
    text = uri.format()
    assert parse(text) == uri
    assert parse(text).format() == text


@given(st.text(max_size=300))
def test_garbage_only_raises_pairing_error(text):
    with contextlib.suppress(PairingError):
        parse(text)


@given(st.text(max_size=200))
def test_garbage_after_the_scheme_only_raises_pairing_error(text):
    with contextlib.suppress(PairingError):
        parse("wc:" + text)


@given(pairings, st.integers(0, 400), st.integers(0, 5), st.text(max_size=6))
def test_mutated_uris_only_raise_pairing_error(uri, at, cut, insert):
    text = uri.format()
    at %= len(text) + 1
    mutated = text[:at] + insert + text[at + cut :]
    try:
        back = parse(mutated)
    except PairingError:
        return
    assert parse(back.format()) == back
