"""The dapp SDK's webhook receiving (dapp/webhooks.py): which requests verify_webhook accepts, which error
names each refusal, and what the ASGI receiver answers (driven in memory with httpx's ASGI transport)."""

from __future__ import annotations

import logging

import httpx
import orjson
import pytest

from wcnotify import spec
from wcnotify.dapp.webhooks import (
    SubscriptionEvent,
    WebhookExpiredError,
    WebhookPayloadError,
    WebhookReceiver,
    WebhookSignatureInvalidError,
    verify_webhook,
)
from wcnotify.protocol.webhook_signature import signature_header

SECRET = "whsec_unit-test-secret"
OTHER = "whsec_another-webhook"
T = 1_700_000_000
EVENT = {
    "id": "0b6c3f43-6c1e-4f5e-9a55-1b2f0c7e9d10", "event": "updated",
    "account": "eip155:1:0xAbC0000000000000000000000000000000000001", "app_domain": "dapp.example",
    "project_id": "3f0c", "notification_types": ["1f6a", "9d2e"], "timestamp": 1_699_999_999_000,
}
BODY = orjson.dumps(EVENT)


def headers(body: bytes = BODY, secret: str = SECRET, t: int = T, delivery: str = "17") -> dict[str, str]:
    return {spec.WEBHOOK_HEADER_SIGNATURE: signature_header(secret, t, body), spec.WEBHOOK_HEADER_DELIVERY: delivery,
            spec.WEBHOOK_HEADER_EVENT: "updated", "content-type": "application/json"}


# ------------------------------------------------------------------------------------ verify_webhook


def test_a_genuine_event_is_parsed_into_its_fields() -> None:
    event = verify_webhook(SECRET, headers(), BODY, now=T + 10)
    assert event == SubscriptionEvent(
        id=EVENT["id"], event=spec.WebhookEvent.UPDATED, account=EVENT["account"], app_domain="dapp.example",
        project_id="3f0c", notification_types=("1f6a", "9d2e"), timestamp=EVENT["timestamp"], signed_at=T,
        delivery=17,
    )


def test_header_names_match_whatever_their_case() -> None:
    lowered = {k.lower(): v for k, v in headers().items()}
    assert verify_webhook(SECRET, lowered, BODY, now=T).delivery == 17
    assert verify_webhook(SECRET, httpx.Headers(headers()), BODY, now=T).signed_at == T


def test_any_of_several_secrets_verifies_during_a_rotation() -> None:
    assert verify_webhook([OTHER, SECRET], headers(), BODY, now=T).id == EVENT["id"]
    assert verify_webhook((SECRET, OTHER), headers(secret=OTHER), BODY, now=T).id == EVENT["id"]
    with pytest.raises(ValueError, match="at least one"):
        verify_webhook([], headers(), BODY, now=T)


@pytest.mark.parametrize(
    ("request_headers", "body", "words"),
    [
        ({}, BODY, "header is missing"),
        (headers(secret=OTHER), BODY, "no signature matches"),  # another webhook's secret, or a forger's
        (headers(), BODY.replace(b"updated", b"subscribed"), "no signature matches"),  # altered body
        (headers(body=orjson.dumps(EVENT, option=orjson.OPT_INDENT_2)), BODY, "no signature matches"),
        ({spec.WEBHOOK_HEADER_SIGNATURE: f"t={T}"}, BODY, "no v1="),
        ({spec.WEBHOOK_HEADER_SIGNATURE: "v1=00"}, BODY, "no t="),
        ({spec.WEBHOOK_HEADER_SIGNATURE: "t=yesterday,v1=00"}, BODY, "not a Unix timestamp"),
    ],
)
def test_forged_altered_or_malformed_signatures_are_invalid(
    request_headers: dict[str, str], body: bytes, words: str
) -> None:
    with pytest.raises(WebhookSignatureInvalidError, match=words):
        verify_webhook(SECRET, request_headers, body, now=T)


def test_a_genuine_signature_outside_the_tolerance_is_expired_either_way() -> None:
    tolerance = spec.WEBHOOK_SIGNATURE_TOLERANCE
    assert verify_webhook(SECRET, headers(), BODY, now=T + tolerance).signed_at == T  # the edge still passes
    with pytest.raises(WebhookExpiredError, match=f"signed {tolerance + 1} s ago"):
        verify_webhook(SECRET, headers(), BODY, now=T + tolerance + 1)  # a captured request replayed later
    with pytest.raises(WebhookExpiredError, match="in the future"):
        verify_webhook(SECRET, headers(), BODY, now=T - tolerance - 1)  # the receiver's clock is behind
    assert verify_webhook(SECRET, headers(), BODY, now=T + 3000, tolerance=3600).signed_at == T


def test_a_forged_signature_is_invalid_not_expired_whatever_its_age() -> None:
    """The signature is checked first: an old forgery is reported as what it is."""
    with pytest.raises(WebhookSignatureInvalidError):
        verify_webhook(SECRET, headers(secret=OTHER), BODY, now=T + 10_000)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        orjson.dumps({**EVENT, "event": "renamed"}),
        orjson.dumps({k: v for k, v in EVENT.items() if k != "account"}),
        orjson.dumps({**EVENT, "notification_types": "1f6a"}),
        orjson.dumps({**EVENT, "timestamp": "yesterday"}),
        orjson.dumps([EVENT]),
    ],
)
def test_a_signed_body_that_is_no_event_is_a_payload_error(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError, match="update wcnotify"):
        verify_webhook(SECRET, headers(body=body), body, now=T)


def test_unsubscribed_has_no_types_and_a_missing_delivery_header_is_none() -> None:
    body = orjson.dumps({**EVENT, "event": "unsubscribed", "notification_types": []})
    only_signature = {spec.WEBHOOK_HEADER_SIGNATURE: signature_header(SECRET, T, body)}
    event = verify_webhook(SECRET, only_signature, body, now=T)
    assert event.event is spec.WebhookEvent.UNSUBSCRIBED and event.notification_types == () and event.delivery is None


# -------------------------------------------------------------------------------------- the receiver


class Recorder:
    def __init__(self, fail: int = 0) -> None:
        self.events: list[SubscriptionEvent] = []
        self.fail = fail

    async def __call__(self, event: SubscriptionEvent) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the dapp's database is down")
        self.events.append(event)


async def post(receiver: WebhookReceiver, body: bytes = BODY, *, secret: str = SECRET, t: int = T) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver), base_url="http://dapp.test") as http:
        return await http.post("/hooks/notify", content=body, headers=headers(body=body, secret=secret, t=t))


async def test_the_receiver_calls_back_once_per_verified_event_and_answers_200() -> None:
    recorder = Recorder()
    receiver = WebhookReceiver(SECRET, recorder, clock=lambda: T + 1)
    r = await post(receiver)
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert [e.id for e in recorder.events] == [EVENT["id"]]
    # a redelivery of the same event (same id, signed anew) is acknowledged without a second call
    again = await post(receiver, t=T + 2)
    assert again.status_code == 200 and again.json() == {"ok": True, "duplicate": True}
    assert len(recorder.events) == 1
    assert SECRET not in repr(receiver)


async def test_the_receiver_refuses_forged_and_stale_requests_with_400_and_calls_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    receiver = WebhookReceiver(SECRET, recorder, clock=lambda: T)
    with caplog.at_level(logging.WARNING, "wcnotify.dapp.webhooks"):
        forged = await post(receiver, secret=OTHER)
        stale = await post(receiver, t=T - spec.WEBHOOK_SIGNATURE_TOLERANCE - 60)
    assert forged.status_code == 400 and "no signature matches" in forged.json()["error"]
    assert stale.status_code == 400 and "ago" in stale.json()["error"]
    assert recorder.events == []
    assert len([r for r in caplog.records if "refused a webhook" in r.message]) == 2


async def test_a_failing_callback_is_answered_500_so_the_server_retries_and_the_retry_is_handled() -> None:
    recorder = Recorder(fail=1)
    receiver = WebhookReceiver(SECRET, recorder, clock=lambda: T)
    failed = await post(receiver)
    assert failed.status_code == 500 and "retry" in failed.json()["error"]
    retried = await post(receiver)  # not remembered as handled: this time the callback runs
    assert retried.status_code == 200 and retried.json() == {"ok": True}
    assert len(recorder.events) == 1


async def test_the_receiver_forgets_the_oldest_ids_beyond_its_memory() -> None:
    recorder = Recorder()
    receiver = WebhookReceiver(SECRET, recorder, clock=lambda: T, remember=2)
    bodies = [orjson.dumps({**EVENT, "id": f"event-{i}"}) for i in range(3)]
    for body in bodies:
        assert (await post(receiver, body)).status_code == 200
    assert (await post(receiver, bodies[2])).json() == {"ok": True, "duplicate": True}
    assert (await post(receiver, bodies[0])).json() == {"ok": True}  # forgotten: handled again
    assert [e.id for e in recorder.events] == ["event-0", "event-1", "event-2", "event-0"]


async def test_the_receiver_answers_other_methods_405_and_large_bodies_413() -> None:
    recorder = Recorder()
    receiver = WebhookReceiver(SECRET, recorder, clock=lambda: T, max_body=len(BODY))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver), base_url="http://dapp.test") as http:
        got = await http.get("/hooks/notify")
        fits = await http.post("/", content=BODY, headers=headers())
        big = BODY + b" "
        too_big = await http.post("/", content=big, headers=headers(body=big))
    assert got.status_code == 405 and got.headers["allow"] == "POST"
    assert fits.status_code == 200
    assert too_big.status_code == 413
    assert len(recorder.events) == 1
    with pytest.raises(ValueError, match="at least one"):
        WebhookReceiver([], recorder)
