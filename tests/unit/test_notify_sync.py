"""pushSubscription Sync values (protocol/notify_sync.py): round trips, and refusal of what a device must not act on."""

from __future__ import annotations

import os

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wcnotify.protocol.crypto import topic_of
from wcnotify.protocol.notify_sync import (
    NotifySyncError,
    PushSubscriptionValue,
    ScopeEntry,
    parse_push_subscription,
)

ACCOUNT = "eip155:1:0x5A9e0A0dF1a3dFcdB6f1E3e9F7Cb4B8e5D3C2B1A"

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)


def value(**overrides: object) -> PushSubscriptionValue:
    key = os.urandom(32)
    fields: dict[str, object] = {
        "topic": topic_of(key), "account": ACCOUNT, "app_domain": "app.example.com", "sym_key": key,
        "expiry": 1_800_000_000, "scope": (ScopeEntry("alerts", "Alerts", True, "11111111-1111-4111-8111-111111111111"),
                                           ScopeEntry("news", "", False, None)),
        "name": "App", "icons": ("https://app.example.com/i.png",), "app_authentication_key": "did:key:z6Mkabc",
    }
    fields.update(overrides)
    return PushSubscriptionValue(**fields)  # type: ignore[arg-type]


@given(scope=st.lists(st.tuples(names, st.booleans(), st.uuids()), max_size=5, unique_by=lambda t: t[0]),
       expiry=st.integers(0, 2**40), domain=st.sampled_from(["a.example", "localhost:3000", "x-y.z.io"]))
def test_round_trip(scope: list[tuple[str, bool, object]], expiry: int, domain: str) -> None:
    original = value(scope=tuple(ScopeEntry(n, "", e, str(u)) for n, e, u in scope), expiry=expiry, app_domain=domain)
    parsed = parse_push_subscription(original.topic, original.encode())
    assert parsed == original
    assert parsed.enabled_ids == tuple(sorted(str(u) for _, e, u in scope if e))


def test_the_seed_shape_without_our_additions_is_read() -> None:
    key = os.urandom(32)
    seed = {"topic": topic_of(key), "account": ACCOUNT, "relay": {"protocol": "irn"},
            "metadata": {"name": "gm", "description": "d", "url": "https://gm.walletconnect.com", "icons": []},
            "scope": {"promotional": {"description": "p", "enabled": True}}, "expiry": 1, "symKey": key.hex()}
    parsed = parse_push_subscription(topic_of(key), orjson.dumps(seed).decode())
    assert parsed.app_domain == "gm.walletconnect.com" and parsed.app_authentication_key is None
    assert parsed.scope == (ScopeEntry("promotional", "p", True, None),) and parsed.enabled_ids == ()


@pytest.mark.parametrize(("mutate", "words"), [
    (lambda d: d.update(symKey="zz"), "symKey"),
    (lambda d: d.update(topic="00" * 32), "sha256"),
    (lambda d: d.update(account="nope"), "account"),
    (lambda d: d["metadata"].update(url="ftp://x"), "metadata.url"),
    (lambda d: d.update(metadata=[]), "metadata"),
    (lambda d: d.update(expiry="soon"), "expiry"),
    (lambda d: d.update(scope=[1]), "scope"),
    (lambda d: d.update(scope={"a": 1}), "scope.a"),
])
def test_malformed_values_are_refused(mutate, words: str) -> None:  # type: ignore[no-untyped-def]
    good = value()
    data = orjson.loads(good.encode())
    mutate(data)
    with pytest.raises(NotifySyncError, match=words):
        parse_push_subscription(good.topic, orjson.dumps(data).decode())


def test_a_record_key_other_than_the_topic_is_refused() -> None:
    good = value()
    with pytest.raises(NotifySyncError, match="record key"):
        parse_push_subscription("00" * 32, good.encode())
    with pytest.raises(NotifySyncError, match="not JSON"):
        parse_push_subscription(good.topic, "{")
    with pytest.raises(NotifySyncError, match="larger"):
        parse_push_subscription(good.topic, " " * 20_000)


def test_a_value_with_a_lone_surrogate_is_refused_not_a_crash() -> None:
    """Found by bench/fuzz.py: the size check encoded the str strictly and raised UnicodeEncodeError."""
    v = value()
    text = v.encode()[:-1] + ',"note":"\udcf0"}'  # a str no UTF-8 bytes (so no relay frame) can carry
    with pytest.raises(NotifySyncError, match="not JSON"):
        parse_push_subscription(v.topic, text)
