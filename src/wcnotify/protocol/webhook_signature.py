"""Signing and verifying the bodies of the notify server's webhooks to dapps (docs/webhooks.md).

The header is ``X-Wcnotify-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
``HMAC-SHA256(key=secret as UTF-8, msg=f"{t}." + raw body)``. Why this shape (Stripe's):

* the timestamp is inside the MAC, so a captured request cannot be replayed later than the tolerance;
* the MAC covers the raw bytes, so a receiver must verify before it parses (re-serialized JSON differs);
* ``v1=`` may appear more than once and any match is accepted, which leaves room to send under two
  secrets while one is being rotated.

Pure: the caller passes ``now`` (its clock), as everything in ``protocol/`` does. The dapp SDK and any
Python receiver reuse :func:`verify_signature`.
"""

from __future__ import annotations

import hashlib
import hmac

from wcnotify import spec

__all__ = ["WebhookSignatureError", "sign", "signature_header", "verify_signature"]


class WebhookSignatureError(ValueError):
    """The request is not a genuine, fresh webhook of this secret: answer it 400 and do not act on it."""


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secret: str, timestamp: int, body: bytes | str) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}."`` followed by ``body`` under ``secret``."""
    message = f"{timestamp}.".encode() + _bytes(body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes | str) -> str:
    """The ``X-Wcnotify-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    return f"t={timestamp},{spec.WEBHOOK_SIGNATURE_SCHEME}={sign(secret, timestamp, body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not value.isascii() or not value.isdigit() or len(value) > 12:
                raise WebhookSignatureError("the signature header's t= is not a Unix timestamp in seconds")
            timestamp = int(value)
        elif key == spec.WEBHOOK_SIGNATURE_SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise WebhookSignatureError("the signature header has no t= timestamp")
    if not signatures:
        raise WebhookSignatureError(f"the signature header has no {spec.WEBHOOK_SIGNATURE_SCHEME}= signature")
    return timestamp, signatures


def verify_signature(
    secret: str, header: str | None, body: bytes | str, *, now: float,
    tolerance: float = spec.WEBHOOK_SIGNATURE_TOLERANCE,
) -> int:
    """Check an ``X-Wcnotify-Signature`` header against the raw ``body``; return its timestamp.

    ``now`` is the receiver's clock (``time.time()``). Raises :class:`WebhookSignatureError` when the
    header is missing or malformed, when ``t`` is more than ``tolerance`` seconds from ``now`` (either way:
    a replay, or a clock to fix), or when no ``v1`` signature matches (compared in constant time).
    """
    if not header:
        raise WebhookSignatureError(f"the {spec.WEBHOOK_HEADER_SIGNATURE} header is missing")
    timestamp, signatures = _parse(header)
    if abs(now - timestamp) > tolerance:
        raise WebhookSignatureError(
            f"the signature's timestamp is {int(now - timestamp)} s from now, beyond the {int(tolerance)} s tolerance"
        )
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in signatures):
        raise WebhookSignatureError("no signature matches the body under this secret")
    return timestamp
