"""The notify server's own keys, derived from ``--seed`` so every replica and restart has the same ones.

Three keys come from one seed, each through HKDF-SHA256 with its own label (so learning one tells nothing
of the others): the X25519 key wallets send ``wc_notifyWatchSubscriptions`` to (its sha256 is the watch
topic), the Ed25519 key that signs watch answers and ``wc_notifySubscriptionsChanged``, and the Ed25519
key the server authenticates to the relay with (its client id, shared by every replica as the reference's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wcnotify import spec
from wcnotify.protocol.crypto import Ed25519KeyPair, X25519KeyPair, topic_of
from wcnotify.protocol.did import build_did_document, encode_did_key


def _derive(seed: str, label: str) -> bytes:
    return HKDF(hashes.SHA256(), length=spec.KEY_LENGTH, salt=None, info=label.encode()).derive(seed.encode())


@dataclass(frozen=True)
class ServerIdentity:
    key_agreement: X25519KeyPair
    authentication: Ed25519KeyPair
    relay: Ed25519KeyPair

    @classmethod
    def from_seed(cls, seed: str) -> ServerIdentity:
        if not seed:
            raise ValueError("the notify server needs a non-empty --seed (keep it fixed: it is the server's identity)")
        return cls(
            X25519KeyPair.from_private(_derive(seed, spec.NOTIFY_SEED_LABEL_KEY_AGREEMENT)),
            Ed25519KeyPair.from_seed(_derive(seed, spec.NOTIFY_SEED_LABEL_AUTHENTICATION)),
            Ed25519KeyPair.from_seed(_derive(seed, spec.NOTIFY_SEED_LABEL_RELAY)),
        )

    @property
    def did_key(self) -> str:
        return encode_did_key(self.authentication.public_key)

    @property
    def watch_topic(self) -> str:
        return topic_of(self.key_agreement.public_key)

    def did_document(self, public_url: str) -> dict[str, Any]:
        """``/.well-known/did.json``: the did:web of the server's public host."""
        return build_did_document(urlparse(public_url).netloc, self.key_agreement.public_key,
                                  self.authentication.public_key)
