"""The webhook signature (protocol/webhook_signature.py): what a dapp's receiver accepts and refuses."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from wcnotify.protocol.webhook_signature import (
    WebhookSignatureError,
    sign,
    signature_header,
    verify_signature,
)

SECRET = "whsec_test-secret"
BODY = b'{"id":"e1","event":"subscribed","account":"eip155:1:0xabc","timestamp":1700000000000}'
T = 1_700_000_000


def test_the_documented_construction() -> None:
    """What docs/webhooks.md tells a receiver in any language to compute."""
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, T, BODY) == expected == sign(SECRET, T, BODY.decode())
    assert signature_header(SECRET, T, BODY) == f"t={T},v1={expected}"


def test_a_genuine_request_verifies_within_the_tolerance() -> None:
    header = signature_header(SECRET, T, BODY)
    assert verify_signature(SECRET, header, BODY, now=T) == T
    assert verify_signature(SECRET, header, BODY.decode(), now=T + 299) == T
    assert verify_signature(SECRET, header, BODY, now=T - 299) == T  # a sender clock slightly ahead
    assert verify_signature(SECRET, header, BODY, now=T + 3000, tolerance=3600) == T


def test_spaces_and_several_signatures_are_accepted() -> None:
    """Any matching v1 passes: a sender may sign under two secrets while one is rotated."""
    good = sign(SECRET, T, BODY)
    assert verify_signature(SECRET, f"t={T}, v1={'0' * 64}, v1={good}", BODY, now=T) == T
    assert verify_signature(SECRET, f"v1={good},t={T},v0=whatever", BODY, now=T) == T


@pytest.mark.parametrize(
    "body",
    [
        BODY.replace(b"subscribed", b"unsubscribed"),
        BODY + b" ",
        BODY.replace(b'"id":"e1",', b""),
        b"",
    ],
    ids=["event-changed", "trailing-space", "field-removed", "empty"],
)
def test_a_tampered_body_is_refused(body: bytes) -> None:
    header = signature_header(SECRET, T, BODY)
    with pytest.raises(WebhookSignatureError, match="no signature matches"):
        verify_signature(SECRET, header, body, now=T)


def test_another_secret_is_refused() -> None:
    with pytest.raises(WebhookSignatureError, match="no signature matches"):
        verify_signature("whsec_other", signature_header(SECRET, T, BODY), BODY, now=T)


def test_a_moved_timestamp_is_refused() -> None:
    """The timestamp is inside the MAC: changing t to pass the freshness check breaks the signature."""
    good = sign(SECRET, T, BODY)
    with pytest.raises(WebhookSignatureError, match="no signature matches"):
        verify_signature(SECRET, f"t={T + 600},v1={good}", BODY, now=T + 600)


@pytest.mark.parametrize("offset", [301, 86_400, -301])
def test_an_old_or_future_timestamp_is_refused(offset: int) -> None:
    header = signature_header(SECRET, T, BODY)
    with pytest.raises(WebhookSignatureError, match="beyond the 300 s tolerance"):
        verify_signature(SECRET, header, BODY, now=T + offset)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "header is missing"),
        ("", "header is missing"),
        ("v1=abc", "no t= timestamp"),
        (f"t={T}", "no v1= signature"),
        (f"t={T},v0=abc", "no v1= signature"),
        ("t=abc,v1=00", "not a Unix timestamp"),
        ("t=-5,v1=00", "not a Unix timestamp"),
        ("t=１２３,v1=00", "not a Unix timestamp"),  # non-ASCII digits
        (f"t={T},v1=é", "no signature matches"),  # non-ASCII signature: refused, not a TypeError
        ("garbage", "no t= timestamp"),
    ],
)
def test_malformed_headers_are_refused(header: str | None, message: str) -> None:
    with pytest.raises(WebhookSignatureError, match=message):
        verify_signature(SECRET, header, BODY, now=T)
