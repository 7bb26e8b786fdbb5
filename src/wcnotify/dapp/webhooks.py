"""Receiving the notify server's webhooks in a dapp: verify, parse, and (optionally) serve as an ASGI app.

A webhook POST tells the dapp that an account subscribed, changed its notification types or unsubscribed
(docs/webhooks.md). Before acting on one, a dapp must know the notify server sent it, and sent it just now:

* :func:`verify_webhook` checks ``X-Wcnotify-Signature`` over the raw body with
  :func:`wcnotify.protocol.webhook_signature.verify_signature`, then parses the body into a
  :class:`SubscriptionEvent`. Each way a request can be wrong has its own error, all answered 400:
  :class:`WebhookSignatureInvalidError` (no header, a malformed one, or no signature matching under the
  secret: forged, altered, or signed with another webhook's secret), :class:`WebhookExpiredError` (a
  genuine signature made longer ago than the tolerance: a captured request replayed, or a clock to fix),
  :class:`WebhookPayloadError` (genuine but not an event this SDK knows: update the SDK).
* Several secrets may be given: while rotating (create a second webhook, switch, delete the first), the
  receiver accepts both.
* :class:`WebhookReceiver` is the whole endpoint as a plain ASGI app: it answers 400 to what fails the
  checks, calls the dapp's async callback once per verified event, and answers 2xx only when the callback
  returned (the server retries anything else, with backoff, in order). It also remembers the ids of the
  events it handled lately, so a redelivery (the server restarted before recording the answer, or two
  webhooks of the project point here) is acknowledged without calling the callback again. That memory is
  this process's only; a dapp that must never act twice also records ``event.id`` durably.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from wcnotify import spec
from wcnotify.dapp._asgi import Receive, Scope, Send, lifespan, read_body, respond_json
from wcnotify.protocol.webhook_signature import WebhookSignatureError, verify_signature

__all__ = [
    "SubscriptionEvent",
    "WebhookError",
    "WebhookExpiredError",
    "WebhookPayloadError",
    "WebhookReceiver",
    "WebhookSignatureInvalidError",
    "parse_event",
    "verify_webhook",
]

log = logging.getLogger("wcnotify.dapp.webhooks")

MAX_BODY = 64 * 1024  # an event is a few hundred bytes; anything much larger is not from the notify server
REMEMBER = 4096  # event ids a receiver remembers to acknowledge redeliveries without calling back


class WebhookError(ValueError):
    """The request is not a genuine, fresh event of this webhook: answer 400 and do not act on it."""


class WebhookSignatureInvalidError(WebhookError):
    """No signature header, a malformed one, or no signature that matches the body under the secret(s)."""


class WebhookExpiredError(WebhookError):
    """The signature is genuine but its timestamp is too far from this clock: a replay, or a skewed clock."""


class WebhookPayloadError(WebhookError):
    """The body is genuinely signed but is not an event this version of the SDK understands."""


@dataclass(frozen=True)
class SubscriptionEvent:
    """One verified change of a subscription to the dapp.

    ``id`` is the change's id: the same on every retry, and for every webhook of the project, so it is what
    to record to drop duplicates. ``notification_types`` are the type ids subscribed after the change (none
    after ``unsubscribed``). ``timestamp`` (Unix ms) is when the change happened; ``signed_at`` (Unix s)
    when this request was signed; ``delivery`` the server's per-webhook, increasing delivery number.
    """

    id: str
    event: spec.WebhookEvent
    account: str
    app_domain: str | None
    project_id: str
    notification_types: tuple[str, ...]
    timestamp: int
    signed_at: int
    delivery: int | None = None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header whatever the mapping's case handling (a plain dict, Starlette's or httpx's Headers)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def parse_event(body: bytes | str, *, signed_at: int, delivery: int | None = None) -> SubscriptionEvent:
    """The event in a webhook body already verified; :class:`WebhookPayloadError` when it is not one."""
    try:
        data: Any = orjson.loads(body)
        types = data["notification_types"]
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise TypeError("notification_types is not a list of strings")
        app_domain = data["app_domain"]
        timestamp = data["timestamp"]
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise TypeError("timestamp is not an integer")
        fields = {name: data[name] for name in ("id", "account", "project_id")}
        if not all(isinstance(v, str) for v in fields.values()) or not isinstance(app_domain, str | None):
            raise TypeError("id, account, project_id and app_domain must be strings")
        return SubscriptionEvent(
            fields["id"], spec.WebhookEvent(data["event"]), fields["account"], app_domain, fields["project_id"],
            tuple(types), timestamp, signed_at, delivery,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise WebhookPayloadError(f"the webhook body is not an event this SDK knows ({exc}); update wcnotify") from exc


def verify_webhook(
    secrets: str | Sequence[str], headers: Mapping[str, str], body: bytes, *, now: float | None = None,
    tolerance: float = spec.WEBHOOK_SIGNATURE_TOLERANCE,
) -> SubscriptionEvent:
    """Verify a webhook request (its headers and its raw, unparsed body) and return its event.

    ``secrets``: the webhook's secret, or several during a rotation. ``now`` defaults to ``time.time()``;
    ``tolerance`` is how far in seconds the signature's timestamp may be from it.
    """
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("verify_webhook needs at least one webhook secret")
    header = _header(headers, spec.WEBHOOK_HEADER_SIGNATURE)
    signed_at: int | None = None
    problem = ""
    for key in keys:  # the signature first (tolerance aside): a forged request is forged, whatever its time
        try:
            signed_at = verify_signature(key, header, body, now=0.0, tolerance=math.inf)
            break
        except WebhookSignatureError as exc:
            problem = str(exc)
    if signed_at is None:
        raise WebhookSignatureInvalidError(problem)
    skew = (time.time() if now is None else now) - signed_at
    if abs(skew) > tolerance:
        when = f"{int(skew)} s ago" if skew > 0 else f"{int(-skew)} s in the future"
        raise WebhookExpiredError(
            f"the webhook was signed {when} by this clock, beyond the {tolerance:g} s tolerance: a replayed "
            "request, or a clock to synchronize"
        )
    delivery = _header(headers, spec.WEBHOOK_HEADER_DELIVERY)
    return parse_event(body, signed_at=signed_at,
                       delivery=int(delivery) if delivery and delivery.isascii() and delivery.isdigit() else None)


OnEvent = Callable[[SubscriptionEvent], Awaitable[None]]


class WebhookReceiver:
    """An ASGI app that receives the webhooks of one project: mount it at the URL the webhook was created
    with (any path reaches it), or run it alone (``uvicorn``; ``wcnotify.serving.AsgiService`` in tests).

    ``on_event`` is awaited once per verified, new event; when it raises, the answer is 500 and the server
    delivers the event again later (and holds the webhook's later events until then: order is kept).
    Keep it short: the server waits at most 10 s for the answer, so queue long work and return.
    """

    def __init__(
        self, secrets: str | Sequence[str], on_event: OnEvent, *, clock: Callable[[], float] = time.time,
        tolerance: float = spec.WEBHOOK_SIGNATURE_TOLERANCE, max_body: int = MAX_BODY, remember: int = REMEMBER,
    ) -> None:
        self.secrets: tuple[str, ...] = (secrets,) if isinstance(secrets, str) else tuple(secrets)
        if not self.secrets:
            raise ValueError("WebhookReceiver needs at least one webhook secret")
        self.on_event = on_event
        self.clock = clock
        self.tolerance = tolerance
        self.max_body = max_body
        self.remember = remember
        self._handled: OrderedDict[str, None] = OrderedDict()

    def __repr__(self) -> str:
        return f"WebhookReceiver(secrets=<{len(self.secrets)}>, on_event={self.on_event!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await respond_json(send, 405, {"error": "webhooks are POSTed"}, ((b"allow", b"POST"),))
            return
        body = await read_body(receive, self.max_body)
        if body is None:
            await respond_json(send, 413, {"error": f"body over {self.max_body} bytes"})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            event = verify_webhook(self.secrets, headers, body, now=self.clock(), tolerance=self.tolerance)
        except WebhookError as exc:
            log.warning("refused a webhook request from %s: %s", (scope.get("client") or ("?",))[0], exc)
            await respond_json(send, 400, {"error": str(exc)})
            return
        if event.id in self._handled:
            self._handled.move_to_end(event.id)
            await respond_json(send, 200, {"ok": True, "duplicate": True})
            return
        try:
            await self.on_event(event)
        except Exception:
            log.exception("the webhook callback failed on event %s (%s); the server will deliver it again",
                          event.id, event.event)
            await respond_json(send, 500, {"error": "the receiver failed to handle the event; retry later"})
            return
        self._handled[event.id] = None
        while len(self._handled) > self.remember:
            self._handled.popitem(last=False)
        await respond_json(send, 200, {"ok": True})
