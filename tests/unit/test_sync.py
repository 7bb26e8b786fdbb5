"""Sync API: key derivation vectors, records and last-writer-wins convergence (protocol/sync.py)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wcnotify.protocol import jsonrpc
from wcnotify.protocol.sync import (
    SyncDel,
    SyncEntry,
    SyncError,
    SyncKeys,
    SyncSet,
    SyncState,
    derive_store,
    derive_store_key,
    parse_record,
    record_from_request,
    record_payload,
    record_request,
    store_path,
    store_topic,
    sync_entropy,
    sync_message,
    sync_mnemonic,
)
from wcnotify.spec import (
    SYNC_DEL,
    SYNC_DERIVATION_ROOT,
    SYNC_SET,
    SYNC_STORE_NOTIFY_SUBSCRIPTION,
    SYNC_STORE_PUSH_SUBSCRIPTION,
)

KAT = json.loads((Path(__file__).parents[1] / "vectors" / "spec-kat.json").read_text())["sync"]
STORE = "my-user-profile"

# ---------------------------------------------------------------------------------------- vectors


def test_message_matches_the_template():
    caip10 = "eip155:1:0x2c7536E3605D9C16a7a3D7b1898e5293d45542eC"
    assert sync_message(caip10) == KAT["message_template"].format(caip10=caip10)
    assert sync_message(caip10).startswith("I authorize this app to sync my account: eip155:1:")


def test_entropy_and_mnemonic_vectors():
    assert sync_entropy(KAT["signature"]).hex() == KAT["entropy_sha256_of_signature_string"]
    assert sync_mnemonic(KAT["signature"]) == KAT["mnemonic"]
    assert len(sync_mnemonic(KAT["signature"]).split()) == 24


def test_signature_is_hashed_exactly_as_given():
    sig = KAT["signature"]
    assert sync_entropy(sig) != sync_entropy(sig.removeprefix("0x"))
    assert sync_entropy(sig) != sync_entropy(sig.upper())


def test_path_vectors():
    assert store_path(KAT["store"]) == KAT["path"]
    assert store_path(SYNC_STORE_PUSH_SUBSCRIPTION) == KAT["path_pushSubscription"]


def test_notify_subscription_path_shares_the_first_six_indices():
    # protocol.md §6: ".../778989428/1768323411/1969386339/1919512692/6909806", first six as pushSubscription
    push = KAT["path_pushSubscription"].split("/")
    root_len = len(SYNC_DERIVATION_ROOT.split("/"))
    expected = [*push[: root_len + 6], "778989428", "1768323411", "1969386339", "1919512692", "6909806"]
    assert store_path(SYNC_STORE_NOTIFY_SUBSCRIPTION) == "/".join(expected)


def test_store_key_and_topic_vectors():
    key = derive_store_key(KAT["signature"], KAT["store"])
    assert key.hex() == KAT["store_key"]
    assert store_topic(key) == KAT["store_topic"]
    keys = derive_store(KAT["signature"], KAT["store"])
    assert keys == SyncKeys(KAT["store"], key, KAT["store_topic"])
    assert KAT["store_key"] not in repr(keys)


def test_stores_get_different_keys():
    a = derive_store(KAT["signature"], SYNC_STORE_PUSH_SUBSCRIPTION)
    b = derive_store(KAT["signature"], SYNC_STORE_NOTIFY_SUBSCRIPTION)
    assert a.key != b.key and a.topic != b.topic


@pytest.mark.parametrize("name", ["", "café", "名前"])
def test_store_names_must_be_non_empty_ascii(name):
    with pytest.raises(SyncError):
        store_path(name)


def test_signature_must_be_a_non_empty_string():
    with pytest.raises(SyncError):
        sync_entropy("")


@given(st.text(st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=64))
def test_path_encodes_the_name_in_four_byte_chunks(name):
    path = store_path(name)
    assert path.startswith(SYNC_DERIVATION_ROOT + "/")
    indices = [int(part) for part in path.removeprefix(SYNC_DERIVATION_ROOT + "/").split("/")]
    assert len(indices) == -(-len(name) // 4)
    assert all(0 <= i < 2**31 for i in indices)  # never hardened
    sizes = [4] * (len(indices) - 1) + [len(name) - 4 * (len(indices) - 1)]
    assert b"".join(i.to_bytes(n, "big") for i, n in zip(indices, sizes, strict=True)) == name.encode()


# ---------------------------------------------------------------------------------------- records


def test_payload_shapes():
    assert record_payload(SyncSet(STORE, "k", "v", 1700000000000123)) == {
        "id": 1700000000000123,
        "jsonrpc": "2.0",
        "method": "wc_syncSet",
        "params": {"key": "k", "value": "v"},
    }
    assert record_payload(SyncDel(STORE, "k", 5)) == {
        "id": 5,
        "jsonrpc": "2.0",
        "method": "wc_syncDel",
        "params": {"key": "k"},
    }
    assert SyncSet.rpc is SYNC_SET and SyncDel.rpc is SYNC_DEL
    assert (SYNC_SET.request_tag, SYNC_DEL.request_tag) == (5000, 5002)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "wc_syncSet",
        {"id": 1, "method": "wc_syncSet", "params": {"key": "k", "value": "v"}},
        {"id": 1, "jsonrpc": "1.0", "method": "wc_syncSet", "params": {"key": "k", "value": "v"}},
        {"id": "1", "jsonrpc": "2.0", "method": "wc_syncSet", "params": {"key": "k", "value": "v"}},
        {"id": True, "jsonrpc": "2.0", "method": "wc_syncSet", "params": {"key": "k", "value": "v"}},
        {"id": 1.0, "jsonrpc": "2.0", "method": "wc_syncSet", "params": {"key": "k", "value": "v"}},
        {"jsonrpc": "2.0", "method": "wc_syncSet", "params": {"key": "k", "value": "v"}},
        {"id": 1, "jsonrpc": "2.0", "method": "wc_syncGet", "params": {"key": "k"}},
        {"id": 1, "jsonrpc": "2.0", "method": "wc_syncSet", "params": ["k", "v"]},
        {"id": 1, "jsonrpc": "2.0", "method": "wc_syncSet", "params": {"key": "k"}},
        {"id": 1, "jsonrpc": "2.0", "method": "wc_syncSet", "params": {"key": "k", "value": {"a": 1}}},
        {"id": 1, "jsonrpc": "2.0", "method": "wc_syncDel", "params": {"key": 1}},
        {"id": 1, "jsonrpc": "2.0", "method": "wc_syncDel"},
    ],
)
def test_parse_refuses_malformed(payload):
    with pytest.raises(SyncError):
        parse_record(STORE, payload)


records = st.one_of(
    st.builds(SyncSet, st.just(STORE), st.text(max_size=8), st.text(max_size=16), st.integers(-(2**63), 2**63)),
    st.builds(SyncDel, st.just(STORE), st.text(max_size=8), st.integers(-(2**63), 2**63)),
)


@given(records)
def test_record_round_trips(record):
    assert parse_record(STORE, record_payload(record)) == record
    wire = jsonrpc.encode(record_request(record))
    assert orjson.loads(wire) == record_payload(record)
    request = jsonrpc.parse_message(wire)
    assert isinstance(request, jsonrpc.Request)
    assert record_from_request(STORE, request) == record


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
near_records = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values | st.integers(0, 2**53),
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]) | json_values,
        "method": st.sampled_from(["wc_syncSet", "wc_syncDel"]) | json_values,
        "params": st.fixed_dictionaries({}, optional={"key": json_values, "value": json_values}) | json_values,
    },
)


@given(json_values | near_records)
def test_random_json_only_raises_sync_error(payload):
    try:
        record = parse_record(STORE, payload)
    except SyncError:
        return
    assert parse_record(STORE, record_payload(record)) == record


# ---------------------------------------------------------------------------------- last writer wins


def test_highest_id_wins_per_key():
    state = SyncState(STORE).apply_all(
        [SyncSet(STORE, "a", "new", 20), SyncSet(STORE, "a", "old", 10), SyncSet(STORE, "b", "x", 1)]
    )
    assert state.items() == {"a": "new", "b": "x"}


def test_tombstone_hides_older_sets_and_yields_to_newer():
    state = SyncState(STORE).apply(SyncSet(STORE, "a", "v1", 10)).apply(SyncDel(STORE, "a", 20))
    assert state.items() == {}
    assert state.get("a") is None
    assert state.entries["a"] == SyncEntry(20, None)
    late = SyncSet(STORE, "a", "late", 15)
    assert not state.accepts(late)
    assert state.apply(late) == state
    newer = SyncSet(STORE, "a", "v2", 30)
    assert state.accepts(newer)
    assert state.apply(newer).items() == {"a": "v2"}


def test_equal_ids_deletion_then_greater_value_win():
    base = SyncState(STORE)
    set_a, set_b, delete = SyncSet(STORE, "k", "a", 7), SyncSet(STORE, "k", "b", 7), SyncDel(STORE, "k", 7)
    assert base.apply(set_a).apply(set_b).items() == base.apply(set_b).apply(set_a).items() == {"k": "b"}
    assert base.apply(set_b).apply(delete).items() == base.apply(delete).apply(set_b).items() == {}


def test_state_is_pure():
    empty = SyncState(STORE)
    full = empty.apply(SyncSet(STORE, "k", "v", 1))
    assert empty.items() == {} and full.items() == {"k": "v"}
    with pytest.raises(TypeError):
        full.entries["x"] = SyncEntry(1, "y")  # type: ignore[index]


def test_other_stores_are_refused():
    with pytest.raises(SyncError):
        SyncState(STORE).apply(SyncSet("other", "k", "v", 1))
    with pytest.raises(SyncError):
        SyncState(STORE).merge(SyncState("other"))


# few keys, ids and values, so that collisions and ties are common
lww_records = st.lists(
    st.one_of(
        st.builds(SyncSet, st.just(STORE), st.sampled_from("abc"), st.sampled_from(["x", "y", "z"]), st.integers(0, 5)),
        st.builds(SyncDel, st.just(STORE), st.sampled_from("abc"), st.integers(0, 5)),
    ),
    max_size=20,
)


@given(lww_records.flatmap(lambda rs: st.tuples(st.just(rs), st.permutations(rs))))
def test_any_order_converges(pair):
    records, shuffled = pair
    expected = SyncState(STORE).apply_all(records)
    assert SyncState(STORE).apply_all(shuffled) == expected
    assert SyncState(STORE).apply_all([*shuffled, *records]) == expected  # redelivery changes nothing


@given(lww_records, st.integers(0, 20))
def test_merging_replicas_equals_applying_everything(records, cut):
    left = SyncState(STORE).apply_all(records[:cut])
    right = SyncState(STORE).apply_all(records[cut:])
    everything = SyncState(STORE).apply_all(records)
    assert left.merge(right) == right.merge(left) == everything
    assert everything.merge(left) == everything


@given(lww_records)
def test_state_matches_a_brute_force_oracle(records):
    state = SyncState(STORE).apply_all(records)
    for key in "abc":
        writes = [r for r in records if r.key == key]
        if not writes:
            assert key not in state.entries
            continue
        top = max(r.id for r in writes)
        at_top = [r for r in writes if r.id == top]
        if any(isinstance(r, SyncDel) for r in at_top):
            assert state.get(key) is None and state.entries[key] == SyncEntry(top, None)
        else:
            assert state.get(key) == max(r.value for r in at_top if isinstance(r, SyncSet))
