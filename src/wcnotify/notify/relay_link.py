"""The notify server's link to the relay: HTTP ``/rpc`` out, the watch webhook in.

Stateless by design (replicas share nothing but the database): every call is one ``POST /rpc`` with the
server's relay-auth JWT, and the relay tells us of wallet messages by POSTing signed ``irn_watchEvent``s
to ``/v1/relay-webhook``. On start (and daily) the server registers that webhook and subscribes, in
batches, to its watch topic and every project and subscriber topic, so a relay that lost its state
learns it again. Receipts (``irn_batchReceive``) are batched so the relay's mailbox for us stays empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from wcnotify import spec
from wcnotify.notify.handlers import RelayEvent
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.did import encode_did_key
from wcnotify.protocol.jwt import JwtError, WatchEventClaims, WatchRegisterClaims
from wcnotify.relay.client import RelayClientError, RelayHttpClient
from wcnotify.spec import RelayMethod, WatchStatus, WatchType

log = logging.getLogger("wcnotify.notify.relay")


class WebhookError(Exception):
    """A webhook call we refuse (422): bad JWT, wrong audience, not the relay's signature."""


class UnknownSignerError(WebhookError):
    """A well-formed watch event signed by a key that is not the relay's as we know it: the relay's key may
    have changed (:meth:`RelayLink.refresh_relay_key`), or someone else signed it."""


class RelayLink:
    def __init__(
        self,
        relay_url: str,
        key: Ed25519KeyPair,
        public_url: str,
        *,
        clock: Callable[[], float] = time.time,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.relay_url = relay_url.rstrip("/")
        self.key = key
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self._http = http or httpx.AsyncClient(timeout=spec.RELAY_REQUEST_TIMEOUT, trust_env=False)
        self.rpc = RelayHttpClient(self.relay_url, key, clock=clock, http=self._http)
        self.relay_did: str | None = None
        self._key_fetched_at = -spec.NOTIFY_RELAY_KEY_REFETCH_MIN  # monotonic time of the last event-prompted fetch
        self._key_fetch: asyncio.Lock = asyncio.Lock()
        self._receipts: list[tuple[str, str]] = []
        self._receipts_ready = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    @property
    def webhook_url(self) -> str:
        return self.public_url + spec.NOTIFY_WEBHOOK_PATH

    @property
    def client_id(self) -> str:
        return encode_did_key(self.key.public_key)

    # ---------------------------------------------------------------------------------- set-up

    async def fetch_relay_key(self) -> str:
        """The relay's did:key, from ``GET {relay}/public-key`` (hex), which signs its watch events."""
        response = await self._http.get(self.relay_url + spec.RELAY_HTTP_PATH_PUBLIC_KEY)
        response.raise_for_status()
        self.relay_did = encode_did_key(bytes.fromhex(response.text.strip()))
        return self.relay_did

    async def refresh_relay_key(self) -> bool | None:
        """Fetch the relay's key again, for an event signed by another key: True when it changed, False when
        not, None when an event made us fetch it less than ``NOTIFY_RELAY_KEY_REFETCH_MIN`` ago (ask later).

        A relay restarted with a new key keeps its watch registrations (SQLite or Redis), so its next events
        come signed by the new key. Without this they were refused until the daily re-sync, and the wallets'
        requests waited in the relay's mailbox that long. Raises httpx.HTTPError when the relay is unreachable
        (the relay retries the event)."""
        before = self.relay_did
        async with self._key_fetch:  # events arriving together share one fetch
            if self.relay_did == before:
                if time.monotonic() - self._key_fetched_at < spec.NOTIFY_RELAY_KEY_REFETCH_MIN:
                    return None
                self._key_fetched_at = time.monotonic()
                await self.fetch_relay_key()
        if self.relay_did != before:
            log.warning("the relay's key changed (now %s): its watch events verify again", self.relay_did)
        return self.relay_did != before

    async def register_webhook(self) -> None:
        now = int(self.clock())
        claims = WatchRegisterClaims(
            iat=now, exp=now + spec.NOTIFY_RELAY_WATCH_TTL, iss=self.client_id, aud=self.relay_url,
            sub=self.public_url, typ=WatchType.SUBSCRIBER.value, whu=self.webhook_url,
            tag=list(spec.NOTIFY_SERVER_WATCHED_TAGS), sts=[WatchStatus.QUEUED.value, WatchStatus.ACCEPTED.value],
        )
        await self.rpc.request(RelayMethod.WATCH_REGISTER, {"registerAuth": claims.sign(self.key)})

    async def subscribe(self, topics: Sequence[str]) -> None:
        for start in range(0, len(topics), spec.RELAY_BATCH_MAX):
            chunk = list(topics[start : start + spec.RELAY_BATCH_MAX])
            if chunk:
                await self.rpc.request(RelayMethod.BATCH_SUBSCRIBE, {"topics": chunk})

    async def unsubscribe(self, topics: Sequence[str]) -> None:
        for start in range(0, len(topics), spec.RELAY_BATCH_MAX):
            chunk = [{"topic": t} for t in topics[start : start + spec.RELAY_BATCH_MAX]]
            if chunk:
                await self.rpc.request(RelayMethod.BATCH_UNSUBSCRIBE, {"subscriptions": chunk})

    async def fetch(self, topics: Sequence[str]) -> tuple[list[RelayEvent], bool]:
        """Messages the relay's mailbox holds for us on ``topics`` (one page) and whether more remain."""
        result = await self.rpc.request(RelayMethod.BATCH_FETCH_MESSAGES, {"topics": list(topics)})
        events = [
            RelayEvent(m["topic"], m["message"], int(m.get("tag", 0)), int(m.get("publishedAt", 0)))
            for m in result.get("messages", [])
            if isinstance(m, dict) and isinstance(m.get("topic"), str) and isinstance(m.get("message"), str)
        ]
        return events, bool(result.get("hasMore"))

    async def publish(self, messages: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(messages), spec.RELAY_BATCH_MAX):
            chunk = list(messages[start : start + spec.RELAY_BATCH_MAX])
            if len(chunk) == 1:
                await self.rpc.request(RelayMethod.PUBLISH, chunk[0])
            elif chunk:
                await self.rpc.request(RelayMethod.BATCH_PUBLISH, {"messages": chunk})

    # -------------------------------------------------------------------------------- webhook

    def verify_event(self, body: Any) -> dict[str, Any]:
        """The ``evt`` of a webhook body ``{"eventAuth": [jwt]}``, or :class:`WebhookError`."""
        if not isinstance(body, dict) or not isinstance(body.get("eventAuth"), list) or len(body["eventAuth"]) != 1:
            raise WebhookError("body must be {\"eventAuth\": [one JWT]}")
        token = body["eventAuth"][0]
        if not isinstance(token, str):
            raise WebhookError("eventAuth must hold a JWT string")
        try:
            claims = WatchEventClaims.verify(token, now=int(self.clock()), aud=self.public_url)
        except JwtError as exc:
            raise WebhookError(f"Could not verify watch event: {exc}") from exc
        if self.relay_did is None or claims.iss != self.relay_did:
            raise UnknownSignerError("Could not verify watch event: not signed by the relay")
        if claims.typ != WatchType.SUBSCRIBER.value or claims.sub != self.client_id:
            raise WebhookError("Could not verify watch event: not a subscriber event for this server")
        evt = claims.evt
        if evt.get("status") not in (WatchStatus.QUEUED.value, WatchStatus.ACCEPTED.value):
            raise WebhookError(f"unexpected watch event status {str(evt.get('status'))[:20]!r}")
        for name, kind in (("topic", str), ("message", str), ("tag", int)):
            if not isinstance(evt.get(name), kind) or isinstance(evt.get(name), bool):
                raise WebhookError(f"watch event has no valid {name}")
        return evt

    # ------------------------------------------------------------------------------- receipts

    def receipt(self, topic: str, message_id: str) -> None:
        """Acknowledge a handled message to the relay (batched; see :meth:`run_receipts`)."""
        self._receipts.append((topic, message_id))
        self._receipts_ready.set()

    async def run_receipts(self) -> None:
        while True:
            await self._receipts_ready.wait()
            await asyncio.sleep(spec.NOTIFY_RECEIPT_FLUSH_SECONDS)
            await self.flush_receipts()

    async def flush_receipts(self) -> None:
        self._receipts_ready.clear()
        while self._receipts:
            batch, self._receipts = self._receipts[: spec.RELAY_BATCH_MAX], self._receipts[spec.RELAY_BATCH_MAX :]
            try:
                await self.rpc.batch_receive(batch)
            except RelayClientError as exc:  # a receipt only keeps the relay's mailbox small: log, move on
                log.warning("irn_batchReceive failed: %s", exc)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush_receipts()
        await self._http.aclose()

