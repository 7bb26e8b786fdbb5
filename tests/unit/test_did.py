"""did:key, CAIP-10 / did:pkh, ERC-55, did:web and did.json documents (protocol.md §1, §4)."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import base58
import orjson
import pytest
from eth_utils import to_checksum_address as eth_utils_checksum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import JSON, JSON_TEXT, apply_edits
from wcnotify.protocol.crypto import Ed25519KeyPair, X25519KeyPair, topic_of
from wcnotify.protocol.did import (
    Account,
    DidError,
    DidWebKeys,
    build_did_document,
    decode_did_key,
    did_web,
    did_web_domain,
    did_web_url,
    domain_scheme,
    encode_did_key,
    is_checksum_address,
    normalize_domain,
    parse_did_document,
    to_checksum_address,
    url_did_web,
)
from wcnotify.spec import (
    DID_FRAGMENT_AUTHENTICATION_KEY,
    DID_FRAGMENT_SUBSCRIBE_KEY,
    DID_JSON_CONTEXT,
    MULTICODEC_ED25519_PUB,
    MULTICODEC_X25519_PUB,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "walletconnect-js.json").read_text())

KEY32 = st.binary(min_size=32, max_size=32)


# ------------------------------------------------------------------------------------------ did:key


def test_ed25519_did_key_round_trip() -> None:
    key = Ed25519KeyPair.generate().public_key
    did = encode_did_key(key)
    assert did.startswith("did:key:z6Mk")
    assert decode_did_key(did) == key
    assert decode_did_key(did, "Ed25519") == key


def test_x25519_did_key_round_trip() -> None:
    key = X25519KeyPair.generate().public_key
    did = encode_did_key(key, "X25519")
    assert did.startswith("did:key:z6LS")
    assert decode_did_key(did, "X25519") == key


def test_did_key_layout_is_multicodec_base58btc() -> None:
    key = bytes(range(32))
    did = encode_did_key(key)
    assert did == "did:key:z" + base58.b58encode(MULTICODEC_ED25519_PUB + key).decode()
    did_x = encode_did_key(key, "X25519")
    assert did_x == "did:key:z" + base58.b58encode(MULTICODEC_X25519_PUB + key).decode()


def test_did_key_of_js_vectors() -> None:
    ident = VECTORS["identity_jwt"]
    pub = bytes.fromhex(ident["identityPublicKey"])
    assert encode_did_key(pub) == ident["identity_did_key"]
    assert decode_did_key(ident["identity_did_key"]) == pub
    pub_b = bytes.fromhex(VECTORS["x25519"]["pubB"])
    assert encode_did_key(pub_b, "X25519") == ident["x25519_did_key_of_pubB"]
    assert decode_did_key(ident["x25519_did_key_of_pubB"], "X25519") == pub_b


def test_bare_multibase_accepted() -> None:
    key = Ed25519KeyPair.generate().public_key
    did = encode_did_key(key)
    bare = did.removeprefix("did:key:")
    assert bare.startswith("z6Mk")
    assert decode_did_key(bare) == key


def test_wrong_kind_refused() -> None:
    key = bytes(range(32))
    with pytest.raises(DidError):
        decode_did_key(encode_did_key(key, "X25519"))  # an X25519 key where Ed25519 is wanted
    with pytest.raises(DidError):
        decode_did_key(encode_did_key(key), "X25519")


@pytest.mark.parametrize("kind", ["secp256k1", "P-256", "ed25519", ""])
def test_unsupported_kind_refused(kind: str) -> None:
    key = bytes(range(32))
    with pytest.raises(DidError):
        encode_did_key(key, kind)
    with pytest.raises(DidError):
        decode_did_key(encode_did_key(key), kind)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_encode_wrong_key_length_refused(length: int) -> None:
    with pytest.raises(DidError):
        encode_did_key(bytes(length))


@pytest.mark.parametrize(
    "did",
    [
        "",
        "did:key:",
        "did:key:z",
        "z",
        "did:key:6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exxH",  # no multibase prefix
        "did:key:f" + (MULTICODEC_ED25519_PUB + bytes(32)).hex(),  # base16 multibase, not supported
        "did:key:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exx0",  # 0 is not base58
        "did:key:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exxO",  # nor O
        "did:key:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exxI",  # nor I
        "did:key:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exxl",  # nor l
        "did:key:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exx\u00e9",  # nor non-ASCII
        "did:key:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2ex xH",
        "did:pkh:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exxH",  # another method
        "DID:KEY:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exxH",
        " did:key:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exxH",
        "did:key:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exxH ",  # not canonical: base58 strips it
        "did:key:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exxH\n",
        "did:key:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exxH\t",
        "did:key:z" + "1" * 300,  # too long
    ],
)
def test_malformed_did_key_refused(did: str) -> None:
    with pytest.raises(DidError):
        decode_did_key(did)


def test_the_relay_auth_did_key_is_valid() -> None:
    # the valid form of the strings mutated above
    assert decode_did_key("did:key:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exxH").hex() == (
        "884ab67f787b69e534bfdba8d5beb4e719700e90ac06317ed177d49e5a33be5a"
    )


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_wrong_payload_length_refused(length: int) -> None:
    did = "did:key:z" + base58.b58encode(MULTICODEC_ED25519_PUB + b"\x01" * length).decode()
    with pytest.raises(DidError):
        decode_did_key(did)


def test_leading_zero_bytes_refused() -> None:
    # base58 writes each leading zero byte as "1": a codec behind a zero byte is not a did:key
    did = "did:key:z" + base58.b58encode(b"\x00" + MULTICODEC_ED25519_PUB + bytes(range(31))).decode()
    assert did.startswith("did:key:z1")
    with pytest.raises(DidError):
        decode_did_key(did)


@pytest.mark.parametrize("value", [None, 5, b"did:key:z6Mk", ["did:key:z6Mk"]])
def test_non_string_did_key_refused(value: Any) -> None:
    with pytest.raises(DidError):
        decode_did_key(value)


@given(key=KEY32)
def test_property_random_keys_round_trip(key: bytes) -> None:
    ed = encode_did_key(key)
    x = encode_did_key(key, "X25519")
    assert ed.startswith("did:key:z6Mk")
    assert x.startswith("did:key:z6LS")
    assert decode_did_key(ed) == key
    assert decode_did_key(x, "X25519") == key
    assert decode_did_key(ed.removeprefix("did:key:")) == key
    with pytest.raises(DidError):
        decode_did_key(ed, "X25519")
    with pytest.raises(DidError):
        decode_did_key(x, "Ed25519")


@given(text=st.text(max_size=300) | st.text(max_size=80).map(lambda t: "did:key:z6Mk" + t))
def test_property_random_text_only_raises_did_error(text: str) -> None:
    try:
        key = decode_did_key(text)
    except DidError:
        return
    assert len(key) == 32
    assert encode_did_key(key) in (text, "did:key:" + text)


@given(raw=st.binary(max_size=40) | KEY32.map(lambda k: MULTICODEC_ED25519_PUB + k))
def test_property_random_multicodec_bytes(raw: bytes) -> None:
    did = "did:key:z" + base58.b58encode(raw).decode()
    try:
        key = decode_did_key(did)
    except DidError:
        assert not (len(raw) == 34 and raw.startswith(MULTICODEC_ED25519_PUB))
    else:
        assert raw == MULTICODEC_ED25519_PUB + key
    for text in (did + " ", did + "\n", did[:-1]):
        try:
            decode_did_key(text)
        except DidError:
            pass
        else:
            assert text == did[:-1]  # only a shorter canonical string can also be a key


# ----------------------------------------------------------------------------------- CAIP-10 / pkh

ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
SOLANA = "solana:4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZ:7S3P4HxJpyyigGzodYwHtCxZyUQe9JiBMHyRWXArAaKv"


def test_caip10_parse_and_str() -> None:
    account = Account.parse(f"eip155:1:{ADDRESS}")
    assert account == Account("eip155", "1", ADDRESS)
    assert str(account) == f"eip155:1:{ADDRESS}"
    assert account.chain_id == "eip155:1"
    assert account.did_pkh == f"did:pkh:eip155:1:{ADDRESS}"
    assert Account.from_did_pkh(account.did_pkh) == account


def test_caip10_non_evm_namespaces() -> None:
    account = Account.parse(SOLANA)
    assert account.namespace == "solana"
    assert account.reference == "4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZ"
    assert str(account) == SOLANA
    assert Account.from_did_pkh("did:pkh:" + SOLANA) == account
    # non-eip155 addresses are case-sensitive (base58) and not checksummed
    assert account.checksummed() is account
    assert account.address_key == account.address
    other = Account("solana", account.reference, account.address.lower())
    assert not account.same_address(other)


def test_vectors_account() -> None:
    cacao = VECTORS["cacao_siwe"]
    account = Account.parse(cacao["caip10"])
    assert account.did_pkh == cacao["did_pkh"]
    assert account.address == cacao["address"]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "eip155",
        "eip155:1",
        f"eip155:{ADDRESS}",
        f"eip155:1:{ADDRESS}:extra",
        f"eip155::{ADDRESS}",
        f"::{ADDRESS}",
        f"EIP155:1:{ADDRESS}",  # namespaces are lowercase
        f"ei:1:{ADDRESS}",  # namespace 3..8 characters
        f"eip155eip:1:{ADDRESS}",
        "eip155:1:0x2c7536E3605D9C16a7a3D7b1898e529396a65c2",  # 39 hex digits
        "eip155:1:0x2c7536E3605D9C16a7a3D7b1898e529396a65c233",  # 41
        "eip155:1:2c7536E3605D9C16a7a3D7b1898e529396a65c23",  # no 0x
        "eip155:1:0x2c7536E3605D9C16a7a3D7b1898e529396a65cgg",  # not hex
        "eip155:1:0X2c7536E3605D9C16a7a3D7b1898e529396a65c23",
        f"eip155:1:{ADDRESS}\n",  # a trailing newline must not slip through "$"
        f"eip155:1:{ADDRESS} ",
        f" eip155:1:{ADDRESS}",
        f"eip155:1 :{ADDRESS}",
        "eip155:" + "1" * 33 + f":{ADDRESS}",  # reference at most 32
        "cosmos:cosmoshub-4:" + "a" * 129,  # address at most 128
        "did:pkh:eip155:1:" + ADDRESS,
    ],
)
def test_invalid_accounts_refused(value: str) -> None:
    with pytest.raises(DidError):
        Account.parse(value)


@pytest.mark.parametrize("value", [None, 1, b"eip155:1:0x", ["eip155:1:" + ADDRESS]])
def test_non_string_account_refused(value: Any) -> None:
    with pytest.raises(DidError):
        Account.parse(value)
    with pytest.raises(DidError):
        Account.from_did_pkh(value)


@pytest.mark.parametrize(
    "did",
    [
        f"eip155:1:{ADDRESS}",
        f"did:key:eip155:1:{ADDRESS}",
        f"DID:PKH:eip155:1:{ADDRESS}",
        "did:pkh:",
        f"did:pkh:eip155:1:{ADDRESS}\n",
        f"did:pkh:eip155:1:{ADDRESS[:-1]}",
    ],
)
def test_invalid_did_pkh_refused(did: str) -> None:
    with pytest.raises(DidError):
        Account.from_did_pkh(did)


def test_same_address_is_chain_agnostic_and_case_insensitive() -> None:
    mainnet = Account.parse(f"eip155:1:{ADDRESS}")
    polygon_lower = Account.parse(f"eip155:137:{ADDRESS.lower()}")
    assert mainnet.same_address(polygon_lower)
    assert polygon_lower.same_address(mainnet)
    assert mainnet.address_key == polygon_lower.address_key == ADDRESS.lower()
    # equality itself stays exact
    assert mainnet != polygon_lower
    other = Account.parse("eip155:1:0x" + "00" * 20)
    assert not mainnet.same_address(other)
    # same address string in another namespace is another account
    assert not mainnet.same_address(Account("cosmos", "1", ADDRESS))


def test_checksummed() -> None:
    lower = Account.parse(f"eip155:10:{ADDRESS.lower()}")
    assert lower.checksummed() == Account("eip155", "10", ADDRESS)
    assert Account.parse(f"eip155:10:{ADDRESS.upper().replace('0X', '0x')}").checksummed().address == ADDRESS


# ------------------------------------------------------------------------------------------- ERC-55

# the test vectors printed in EIP-55 itself
EIP55_EXAMPLES = [
    # all caps
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    # all lower
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    # normal
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", EIP55_EXAMPLES)
def test_eip55_examples(address: str) -> None:
    assert to_checksum_address(address.lower()) == address
    assert to_checksum_address("0x" + address[2:].upper()) == address
    assert to_checksum_address(address) == address
    assert is_checksum_address(address)


@pytest.mark.parametrize("address", EIP55_EXAMPLES[4:])
def test_wrong_case_is_no_checksum(address: str) -> None:
    assert not is_checksum_address(address.lower())
    assert not is_checksum_address("0x" + address[2:].upper())
    # flip the case of one letter
    index = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    flipped = address[:index] + address[index].swapcase() + address[index + 1 :]
    assert not is_checksum_address(flipped)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "0x",
        "0x123",
        EIP55_EXAMPLES[4][2:],
        EIP55_EXAMPLES[4] + "\n",
        EIP55_EXAMPLES[4] + "00",
        "0x" + "g" * 40,
        "0X" + "a" * 40,
    ],
)
def test_checksum_of_invalid_address_refused(address: str) -> None:
    with pytest.raises(DidError):
        to_checksum_address(address)
    assert not is_checksum_address(address)


@given(
    raw=st.binary(min_size=20, max_size=20),
    ref_a=st.integers(min_value=0, max_value=10**9),
    ref_b=st.integers(min_value=0, max_value=10**9),
)
def test_property_checksum_and_same_address(raw: bytes, ref_a: int, ref_b: int) -> None:
    address = "0x" + raw.hex()
    expected = eth_utils_checksum(address)
    assert to_checksum_address(address) == expected
    assert to_checksum_address(address.upper().replace("0X", "0x")) == expected
    assert is_checksum_address(expected)
    # chain-agnostic, case-insensitive account identity
    lower = Account.parse(f"eip155:{ref_a}:{address}")
    checksummed = Account.parse(f"eip155:{ref_b}:{expected}")
    assert lower.same_address(checksummed)
    assert lower.checksummed() == Account("eip155", str(ref_a), expected)
    assert Account.from_did_pkh(checksummed.did_pkh) == checksummed


CAIP10_TEXT = st.text(alphabet="eip155:0123456789abcdefABCDEFx-_.%", max_size=80)


@given(text=st.text(max_size=200) | CAIP10_TEXT | st.text(max_size=60).map(lambda t: "eip155:1:" + t))
def test_property_random_text_to_account_only_raises_did_error(text: str) -> None:
    try:
        account = Account.parse(text)
    except DidError:
        pass
    else:
        assert str(account) == text
        assert Account.from_did_pkh(account.did_pkh) == account
    with contextlib.suppress(DidError):
        Account.from_did_pkh("did:pkh:" + text)
    try:
        to_checksum_address(text)
    except DidError:
        assert not is_checksum_address(text)


# ------------------------------------------------------------------------------------------ did:web


@pytest.mark.parametrize(
    ("domain", "did"),
    [
        ("example.com", "did:web:example.com"),
        ("App.Example.COM", "did:web:app.example.com"),
        ("localhost:3000", "did:web:localhost:3000"),
        ("localhost%3A3000", "did:web:localhost:3000"),
        ("localhost%3a3000", "did:web:localhost:3000"),
        ("notify.walletconnect.com", "did:web:notify.walletconnect.com"),
    ],
)
def test_did_web(domain: str, did: str) -> None:
    assert did_web(domain) == did
    assert did_web_domain(did) == normalize_domain(domain)


@pytest.mark.parametrize(
    ("did", "domain"),
    [
        ("did:web:example.com", "example.com"),
        ("did:web:localhost%3A8080", "localhost:8080"),
        ("did:web:localhost:8080", "localhost:8080"),
        ("did:web:Example.com", "example.com"),
    ],
)
def test_did_web_domain(did: str, domain: str) -> None:
    assert did_web_domain(did) == domain


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("did:web:example.com", "https://example.com/.well-known/did.json"),
        ("example.com", "https://example.com/.well-known/did.json"),
        ("did:web:example.com%3A8443", "https://example.com:8443/.well-known/did.json"),
        ("did:web:localhost", "http://localhost/.well-known/did.json"),
        ("did:web:localhost%3A3000", "http://localhost:3000/.well-known/did.json"),
        ("did:web:localhost:3000", "http://localhost:3000/.well-known/did.json"),
        ("localhost:3000", "http://localhost:3000/.well-known/did.json"),
    ],
)
def test_did_web_url(value: str, url: str) -> None:
    assert did_web_url(value) == url
    assert url_did_web(url) == did_web(did_web_domain(value) if value.startswith("did:web:") else value)


def test_domain_scheme() -> None:
    assert domain_scheme("localhost") == "http"
    assert domain_scheme("localhost:8557") == "http"
    assert domain_scheme("LOCALHOST:1") == "http"
    assert domain_scheme("example.com") == "https"
    assert domain_scheme("127.0.0.1:8000") == "https"  # only the name localhost, as the JS client
    # the JS client's prefix test would fetch these in the clear; a look-alike domain gets https here
    assert domain_scheme("localhost.evil.example") == "https"
    assert domain_scheme("localhostevil.example:80") == "https"


@pytest.mark.parametrize(
    ("url", "did"),
    [
        ("https://example.com", "did:web:example.com"),
        ("https://example.com/", "did:web:example.com"),
        ("https://example.com/.well-known/did.json", "did:web:example.com"),
        ("http://localhost:3000/.well-known/did.json", "did:web:localhost:3000"),
        ("https://EXAMPLE.com", "did:web:example.com"),
    ],
)
def test_url_did_web(url: str, did: str) -> None:
    assert url_did_web(url) == did


@pytest.mark.parametrize(
    "url",
    [
        "",
        "example.com",
        "ftp://example.com",
        "https://",
        "https://example.com/path",
        "https://example.com/.well-known/did.json/extra",
        "https://example.com/.well-known/other.json",
        "https://example.com?x=1",
        "https://example.com#frag",
        "https://user@example.com",
        "https://exa mple.com",
        "https://example.com\n",
        "https://example.com/.well-known/did.json\n",
    ],
)
def test_url_did_web_refused(url: str) -> None:
    with pytest.raises(DidError):
        url_did_web(url)


@pytest.mark.parametrize(
    "did",
    [
        "",
        "did:web:",
        "did:key:example.com",
        "web:example.com",
        "did:web:example.com:user:alice",  # did:web paths are not used by Notify
        "did:web:example.com/path",
        "did:web:example.com%2Fpath",
        "did:web:example.com%3Auser",
        "did:web:example.com:",
        "did:web:example.com:123456",
        "did:web:exa mple.com",
        "did:web:example.com?x",
        "did:web:example.com#key",
        "did:web:example.com\n",
        "did:web:example.com%0A",
        "did:web:exämple.com",
        "did:web:" + "a" * 254,
    ],
)
def test_invalid_did_web_refused(did: str) -> None:
    with pytest.raises(DidError):
        did_web_domain(did)
    with pytest.raises(DidError):
        did_web_url(did)


@pytest.mark.parametrize("value", [None, 1, b"example.com"])
def test_non_string_domain_refused(value: Any) -> None:
    with pytest.raises(DidError):
        normalize_domain(value)
    with pytest.raises(DidError):
        did_web_domain(value)


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
DOMAIN = st.builds(
    lambda first, labels, port: first + "".join("." + label for label in labels) + (f":{port}" if port else ""),
    st.sampled_from(["localhost", "app", "example", "notify", "a-b"]) | _LABEL,
    st.lists(_LABEL, max_size=3),
    st.none() | st.integers(min_value=0, max_value=99999),
)


def _did_web_round_trip(domain: str) -> None:
    did = did_web(domain)
    assert did == "did:web:" + domain
    assert did_web_domain(did) == domain
    assert did_web_domain(did.replace(":", "%3A").replace("did%3Aweb%3A", "did:web:")) == domain
    url = did_web_url(did)
    assert url.endswith("/.well-known/did.json")
    assert url.startswith("http://" if domain.partition(":")[0] == "localhost" else "https://")
    assert url_did_web(url) == did


@given(text=st.text(max_size=100) | st.text(alphabet="abc.-:%3AaF09/?#\n ", max_size=40))
def test_property_random_text_to_did_web_only_raises_did_error(text: str) -> None:
    for fn in (did_web_domain, did_web_url, normalize_domain, url_did_web):
        for value in (text, "did:web:" + text, "https://" + text):
            with contextlib.suppress(DidError):
                fn(value)


# ---------------------------------------------------------------------------------------- did.json


def _keys() -> tuple[bytes, bytes]:
    return X25519KeyPair.generate().public_key, Ed25519KeyPair.generate().public_key


def test_did_document_shape() -> None:
    agreement, auth = _keys()
    doc = build_did_document("app.example.com", agreement, auth)
    did = "did:web:app.example.com"
    sub_id = f"{did}#{DID_FRAGMENT_SUBSCRIBE_KEY}"
    auth_id = f"{did}#{DID_FRAGMENT_AUTHENTICATION_KEY}"
    assert doc == {
        "@context": list(DID_JSON_CONTEXT),
        "id": did,
        "verificationMethod": [
            {
                "id": sub_id,
                "type": "JsonWebKey2020",
                "controller": did,
                "publicKeyJwk": {"kty": "OKP", "crv": "X25519", "x": base64.urlsafe_b64encode(agreement).decode()},
            },
            {
                "id": auth_id,
                "type": "JsonWebKey2020",
                "controller": did,
                "publicKeyJwk": {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(auth).decode()},
            },
        ],
        "keyAgreement": [sub_id],
        "authentication": [auth_id],
    }
    # padded, as notify-server's data_encoding::BASE64URL writes it
    for method in doc["verificationMethod"]:
        assert len(method["publicKeyJwk"]["x"]) == 44
        assert method["publicKeyJwk"]["x"].endswith("=")


def test_did_document_x_of_the_spec_example() -> None:
    kat = json.loads((Path(__file__).parents[1] / "vectors" / "spec-kat.json").read_text())["relay_auth_jwt"]
    doc = build_did_document("example.com", bytes(32), bytes.fromhex(kat["publicKey"]))
    assert doc["verificationMethod"][1]["publicKeyJwk"]["x"] == kat["did_json_x_of_publicKey_padded"]


def test_did_document_round_trip() -> None:
    agreement, auth = _keys()
    doc = build_did_document("localhost:3000", agreement, auth)
    keys = parse_did_document(orjson.loads(orjson.dumps(doc)))
    assert keys == DidWebKeys("did:web:localhost:3000", agreement, auth)
    assert keys.authentication_did_key == encode_did_key(auth)
    assert keys.subscribe_topic == topic_of(agreement)
    assert parse_did_document(doc, expected_did="did:web:localhost:3000") == keys
    assert parse_did_document(doc, expected_did="did:web:localhost%3A3000") == keys


def test_did_document_unpadded_x_parses() -> None:
    agreement, auth = _keys()
    doc = build_did_document("example.com", agreement, auth)
    for method in doc["verificationMethod"]:
        method["publicKeyJwk"]["x"] = method["publicKeyJwk"]["x"].rstrip("=")
        assert len(method["publicKeyJwk"]["x"]) == 43
    assert parse_did_document(doc) == DidWebKeys("did:web:example.com", agreement, auth)


def test_did_document_js_vector_x() -> None:
    jwk = VECTORS["did_json_jwk"]
    doc = build_did_document("example.com", bytes(32), bytes(32))
    doc["verificationMethod"][0]["publicKeyJwk"]["x"] = jwk["keyAgreement_x"]
    doc["verificationMethod"][1]["publicKeyJwk"]["x"] = jwk["authentication_x"]
    keys = parse_did_document(doc)
    assert keys.key_agreement.hex() == jwk["keyAgreement_hex"]
    assert keys.authentication.hex() == jwk["authentication_hex"]


def test_did_document_standard_alphabet_x_parses() -> None:
    # the JS client maps -/_ to +// before decoding, so a standard-alphabet x works there too
    key = bytes([0xFB, 0xFF] * 16)
    assert "-" in base64.urlsafe_b64encode(key).decode()
    doc = build_did_document("example.com", key, key)
    doc["verificationMethod"][0]["publicKeyJwk"]["x"] = base64.b64encode(key).decode()
    assert parse_did_document(doc).key_agreement == key


def test_did_document_lookup_is_by_reference_not_position() -> None:
    agreement, auth = _keys()
    doc = build_did_document("example.com", agreement, auth)
    doc["verificationMethod"].reverse()
    doc["verificationMethod"].insert(0, {"id": "did:web:example.com#other", "publicKeyJwk": {"crv": "X25519"}})
    assert parse_did_document(doc) == DidWebKeys("did:web:example.com", agreement, auth)


def test_did_document_embedded_method_accepted() -> None:
    agreement, auth = _keys()
    doc = build_did_document("example.com", agreement, auth)
    doc["keyAgreement"] = [doc["verificationMethod"][0]]
    doc["verificationMethod"] = [doc["verificationMethod"][1]]
    assert parse_did_document(doc).key_agreement == agreement


def test_build_did_document_refuses_bad_keys() -> None:
    with pytest.raises(DidError):
        build_did_document("example.com", bytes(31), bytes(32))
    with pytest.raises(DidError):
        build_did_document("example.com", bytes(32), bytes(33))
    with pytest.raises(DidError):
        build_did_document("example.com/path", bytes(32), bytes(32))


def _doc() -> dict[str, Any]:
    return build_did_document("example.com", bytes(range(32)), bytes(range(32, 64)))


def _swap_crv(doc: dict[str, Any]) -> None:
    doc["verificationMethod"][0]["publicKeyJwk"]["crv"] = "Ed25519"


def _swap_both_crv(doc: dict[str, Any]) -> None:
    doc["verificationMethod"][0]["publicKeyJwk"]["crv"] = "Ed25519"
    doc["verificationMethod"][1]["publicKeyJwk"]["crv"] = "X25519"


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def mutate(doc: dict[str, Any]) -> None:
        target: Any = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def _delete(path: tuple[Any, ...]) -> Any:
    def mutate(doc: dict[str, Any]) -> None:
        target: Any = doc
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_swap_crv, id="keyAgreement-is-ed25519"),
        pytest.param(_swap_both_crv, id="crv-swapped"),
        pytest.param(_set(("verificationMethod", 1, "publicKeyJwk", "crv"), "secp256k1"), id="auth-crv"),
        pytest.param(_delete(("verificationMethod", 0, "publicKeyJwk", "crv")), id="no-crv"),
        pytest.param(_delete(("keyAgreement",)), id="no-keyAgreement"),
        pytest.param(_set(("keyAgreement",), []), id="empty-keyAgreement"),
        pytest.param(_set(("keyAgreement",), "did:web:example.com#wc-notify-subscribe-key"), id="keyAgreement-str"),
        pytest.param(_delete(("authentication",)), id="no-authentication"),
        pytest.param(_set(("keyAgreement", 0), "did:web:example.com#missing"), id="dangling-keyAgreement"),
        pytest.param(_set(("authentication", 0), "did:web:example.com#missing"), id="dangling-authentication"),
        pytest.param(_set(("keyAgreement", 0), None), id="null-reference"),
        pytest.param(_set(("keyAgreement", 0), ["did:web:example.com#wc-notify-subscribe-key"]), id="list-ref"),
        pytest.param(_set(("keyAgreement", 0), 7), id="int-ref"),
        pytest.param(_set(("verificationMethod", 0, "id"), ["unhashable"]), id="list-id"),
        pytest.param(_set(("verificationMethod", 0, "id"), {"a": 1}), id="dict-id"),
        pytest.param(_set(("verificationMethod",), {}), id="methods-not-list"),
        pytest.param(_delete(("verificationMethod",)), id="no-methods"),
        pytest.param(_set(("verificationMethod",), []), id="empty-methods"),
        pytest.param(_set(("verificationMethod", 0), "x"), id="method-not-object"),
        pytest.param(_delete(("verificationMethod", 0, "publicKeyJwk")), id="no-jwk"),
        pytest.param(_set(("verificationMethod", 0, "publicKeyJwk"), "jwk"), id="jwk-not-object"),
        pytest.param(_delete(("verificationMethod", 0, "publicKeyJwk", "x")), id="no-x"),
        pytest.param(_set(("verificationMethod", 0, "publicKeyJwk", "x"), 5), id="x-int"),
        pytest.param(_set(("verificationMethod", 0, "publicKeyJwk", "x"), "!!!!"), id="x-not-base64"),
        pytest.param(_set(("verificationMethod", 0, "publicKeyJwk", "x"), "AAAA"), id="x-3-bytes"),
        pytest.param(
            _set(("verificationMethod", 0, "publicKeyJwk", "x"), base64.urlsafe_b64encode(bytes(31)).decode()),
            id="x-31-bytes",
        ),
        pytest.param(
            _set(("verificationMethod", 0, "publicKeyJwk", "x"), base64.urlsafe_b64encode(bytes(33)).decode()),
            id="x-33-bytes",
        ),
        pytest.param(_set(("verificationMethod", 0, "publicKeyJwk", "x"), "A" * 100), id="x-too-long"),
        pytest.param(_set(("verificationMethod", 0, "publicKeyJwk", "x"), "AAAAé"), id="x-non-ascii"),
        pytest.param(_delete(("id",)), id="no-id"),
        pytest.param(_set(("id",), 5), id="id-int"),
    ],
)
def test_bad_did_documents_refused(mutate: Any) -> None:
    doc = _doc()
    parse_did_document(doc)  # the unmodified document is fine
    mutate(doc)
    with pytest.raises(DidError):
        parse_did_document(doc)


@pytest.mark.parametrize("document", [None, [], "did", 5, b"{}"])
def test_did_document_not_an_object_refused(document: Any) -> None:
    with pytest.raises(DidError):
        parse_did_document(document)


@pytest.mark.parametrize(
    "expected", ["did:web:other.com", "did:web:example.com:8080", "did:web:sub.example.com", "did:key:z6Mk", "x"]
)
def test_did_document_expected_did_mismatch_refused(expected: str) -> None:
    with pytest.raises(DidError):
        parse_did_document(_doc(), expected_did=expected)


def test_did_document_id_not_did_web_refused_when_expected() -> None:
    doc = _doc()
    doc["id"] = "did:key:z6MkodHZwneVRShtaLf8JKYkxpDGp1vGZnpGmdBpX8M2exxH"
    parse_did_document(doc)  # without an expectation the id is only carried along
    with pytest.raises(DidError):
        parse_did_document(doc, expected_did="did:web:example.com")


@given(agreement=KEY32, auth=KEY32, domain=DOMAIN, padded=st.booleans())
def test_property_did_web_and_document_round_trip(agreement: bytes, auth: bytes, domain: str, padded: bool) -> None:
    _did_web_round_trip(domain)
    doc = orjson.loads(orjson.dumps(build_did_document(domain, agreement, auth)))
    if not padded:
        for method in doc["verificationMethod"]:
            method["publicKeyJwk"]["x"] = method["publicKeyJwk"]["x"].rstrip("=")
    keys = parse_did_document(doc, expected_did=did_web(domain))
    assert keys == DidWebKeys(did_web(domain), agreement, auth)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


DOC_PATHS = _paths(_doc())


EDITS = st.lists(st.tuples(st.sampled_from(DOC_PATHS), JSON, st.booleans()), min_size=1, max_size=3)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(document=JSON | st.dictionaries(st.sampled_from(sorted(_doc())) | JSON_TEXT, JSON, max_size=6) | EDITS)
def test_property_random_json_as_did_document_only_raises_did_error(document: Any) -> None:
    """Random JSON, random objects with did.json's keys, and valid documents with random parts replaced."""
    if isinstance(document, list) and document and isinstance(document[0], tuple):
        document = _edited_document(document)
    for expected in (None, "did:web:example.com"):
        try:
            keys = parse_did_document(document, expected_did=expected)
        except DidError:
            continue
        assert len(keys.key_agreement) == 32
        assert len(keys.authentication) == 32


def _edited_document(edits: list[tuple[tuple[Any, ...], Any, bool]]) -> dict[str, Any]:
    result: dict[str, Any] = apply_edits(_doc(), edits)
    return result
