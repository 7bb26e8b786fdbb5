"""Webhooks to dapps: a project's URLs told when an account subscribes, changes its types or unsubscribes.

Rules (docs/webhooks.md is the dapp-facing version):

1. **Outbox.** A wallet handler that changes a subscription calls :func:`record_change` inside its own
   write transaction, which inserts one ``webhook_events`` row per matching webhook. So an event exists
   if and only if the change committed, and a crash between the commit and the POST loses nothing.
2. **Which event.** A new subscription is ``subscribed``; a deleted one is ``unsubscribed``; a subscribe or
   update that changes the set of notification types is ``updated``. A subscribe or update that changes
   nothing the dapp can see (same types; only the expiry renewed) makes no event.
3. **Order.** One webhook's events go out strictly in id order, one at a time: the next is not sent until
   the previous one was answered 2xx (or dropped, rule 6). Writes for one account serialize on its
   subscriber row, so id order is that account's commit order, on SQLite and on PostgreSQL.
4. **Claims.** A server process takes a webhook's queue by moving ``next_attempt_at`` from the past to
   ``now + WEBHOOK_CLAIM_LEASE`` with a conditional UPDATE (rowcount 1 = ours). That value is also the
   claim's token: later writes check it, so if a replica stalled past its lease and another took over,
   the stale one stops. Replicas on one PostgreSQL therefore never deliver one queue concurrently, and a
   claim whose holder died frees itself when the lease ends.
5. **Outcome.** 2xx = delivered. Anything else (3xx: redirects are never followed; 4xx; 5xx; a timeout of
   ``WEBHOOK_HTTP_TIMEOUT`` for the whole request; a connection error) is a failed attempt and is retried
   after ``WEBHOOK_RETRY_BASE`` doubled per consecutive failure, capped at ``WEBHOOK_RETRY_MAX``, each wait
   drawn from 80-100 % of that (jitter, so receivers coming back are not hit by every server at once).
   Retrying 4xx too keeps rule 3's promise simple: an event is skipped only by rule 6; a receiver that
   wants to ignore an event answers 2xx. Unless the server allows private URLs, each attempt first resolves
   the URL's host and, when any address is not public (notify/netguard.py), connects nowhere: a failed
   attempt whose ``last_error`` says so; otherwise it connects to the address it checked (no second lookup).
6. **Give up.** When an attempt fails, pending events of that webhook older than ``WEBHOOK_EVENT_MAX_AGE``
   are dropped (and counted in ``failed``), so a dead URL holds at most three days of events.
7. **Isolation.** Delivery runs in its own task, never inside a wallet handler or a database transaction,
   and up to ``WEBHOOK_CONCURRENCY`` webhooks are delivered at once: a receiver that hangs holds one slot
   for at most the timeout, and its own queue only.

Delivery is at least once: a crash after the receiver answered and before the row was marked resends that
event, with the same ``X-Wcnotify-Delivery`` id and body ``id``, which receivers use to drop duplicates.
Secrets are never logged, nor whole URLs (a query string may carry a token): logs name the webhook id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wcnotify import spec
from wcnotify.notify.netguard import NetGuard, NonPublicAddressError, pinned
from wcnotify.notify.store import Database, Project, Subscriber, new_id
from wcnotify.protocol.webhook_signature import signature_header
from wcnotify.spec import WebhookEvent
from wcnotify.storage.tables import dapp_webhooks, projects, webhook_events

__all__ = [
    "Webhook",
    "WebhookDispatcher",
    "WebhookLimitError",
    "change_event",
    "check_events",
    "check_url",
    "create_webhook",
    "delete_webhook",
    "list_webhooks",
    "record_change",
]

log = logging.getLogger("wcnotify.notify.webhooks")

_ERROR_MAX = 255  # dapp_webhooks.last_error
_RESPONSE_READ_MAX = 64 * 1024  # a 2xx body is read (so the connection is reused) up to this, then dropped
# the wallet requests that can change a subscription, and so add webhook events (wake the dispatcher)
_CHANGING_TAGS = frozenset(rpc.request_tag for rpc in (spec.NOTIFY_SUBSCRIBE, spec.NOTIFY_UPDATE, spec.NOTIFY_DELETE))


class WebhookLimitError(Exception):
    """The project already has ``WEBHOOK_MAX_PER_PROJECT`` webhooks."""


# ------------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class Webhook:
    """A webhook and its delivery state, as the dapp API lists it (never with its secret)."""

    id: str
    url: str
    events: tuple[str, ...]
    created_at: int
    delivered: int
    failed: int
    pending: int
    attempts: int
    next_attempt_at: int
    last_error: str | None

    def to_json(self, now_ms: int) -> dict[str, Any]:
        retrying = self.attempts > 0 and self.pending > 0
        return {
            "id": self.id, "url": self.url, "events": list(self.events), "created_at": self.created_at,
            "delivered": self.delivered, "failed": self.failed, "pending": self.pending,
            "consecutive_failures": self.attempts, "last_error": self.last_error,
            # when the next retry is due; null while the queue is healthy (the column doubles as a lease)
            "next_attempt_at": self.next_attempt_at if retrying and self.next_attempt_at > now_ms else None,
        }


@dataclass(frozen=True)
class _Claim:
    webhook: str
    url: str
    secret: str
    token: int  # the next_attempt_at value we wrote: the lease's end in ms, and proof the lease is ours


@dataclass(frozen=True)
class _Pending:
    id: int
    event: str
    payload: str
    created_at: int


# ---------------------------------------------------------------------------------------- validation


def check_url(url: str) -> str:
    """The URL when a webhook may POST to it; ValueError saying what is wrong otherwise."""
    if len(url) > spec.WEBHOOK_URL_MAX:
        raise ValueError(f"url is longer than {spec.WEBHOOK_URL_MAX} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises on a port that is not a number in range
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise ValueError(f"url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("url must be an absolute http:// or https:// URL")
    return url


def check_events(events: Sequence[str] | None) -> tuple[str, ...]:
    """The events asked for (all of them when None), in the canonical order; ValueError when unknown/empty."""
    if events is None:
        return tuple(spec.WEBHOOK_EVENTS)
    known = {e.value for e in spec.WEBHOOK_EVENTS}
    unknown = sorted({e for e in events if e not in known})
    if unknown:
        raise ValueError(f"unknown event(s) {', '.join(unknown)}; events are {', '.join(sorted(known))}")
    if not events:
        raise ValueError("events must name at least one event (leave it out for all of them)")
    return tuple(e.value for e in spec.WEBHOOK_EVENTS if e.value in events)


# ----------------------------------------------------------------------------------- the dapp API


async def create_webhook(
    conn: AsyncConnection, project: Project, *, url: str, events: Sequence[str], now_ms: int
) -> tuple[Webhook, str]:
    """A new webhook and its secret (returned here only). Raises :class:`WebhookLimitError` at the limit."""
    # lock the project row (PostgreSQL; SQLite writers are serialized anyway) so two concurrent creates
    # cannot both see room for one more
    await conn.execute(select(projects.c.id).where(projects.c.id == project.id).with_for_update())
    count = (await conn.execute(select(func.count()).where(dapp_webhooks.c.project == project.id))).scalar_one()
    if count >= spec.WEBHOOK_MAX_PER_PROJECT:
        raise WebhookLimitError(project.project_id)
    secret = spec.WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)
    webhook_id = new_id()
    await conn.execute(
        dapp_webhooks.insert().values(
            id=webhook_id, project=project.id, url=url, secret=secret, events=orjson.dumps(list(events)).decode(),
            created_at=now_ms, attempts=0, next_attempt_at=0, delivered=0, failed=0,
        )
    )
    return Webhook(webhook_id, url, tuple(events), now_ms, 0, 0, 0, 0, 0, None), secret


async def list_webhooks(conn: AsyncConnection, project: Project) -> list[Webhook]:
    pending = (
        select(func.count())
        .where(webhook_events.c.webhook == dapp_webhooks.c.id, webhook_events.c.delivered_at.is_(None))
        .scalar_subquery()
    )
    rows = await conn.execute(
        select(dapp_webhooks, pending.label("pending"))
        .where(dapp_webhooks.c.project == project.id)
        .order_by(dapp_webhooks.c.created_at, dapp_webhooks.c.id)
    )
    return [
        Webhook(
            r.id, r.url, tuple(orjson.loads(r.events)), int(r.created_at), int(r.delivered), int(r.failed),
            int(r.pending), int(r.attempts), int(r.next_attempt_at), r.last_error,
        )
        for r in rows
    ]


async def delete_webhook(conn: AsyncConnection, project: Project, webhook_id: str) -> bool:
    """Delete the project's webhook and its queue; False when the project has no such webhook."""
    found = (
        await conn.execute(
            select(dapp_webhooks.c.id).where(dapp_webhooks.c.id == webhook_id, dapp_webhooks.c.project == project.id)
        )
    ).first()
    if found is None:
        return False
    # explicit child delete, as store.delete_subscriber: correct with or without SQLite's foreign_keys
    await conn.execute(delete(webhook_events).where(webhook_events.c.webhook == webhook_id))
    await conn.execute(delete(dapp_webhooks).where(dapp_webhooks.c.id == webhook_id))
    return True


# --------------------------------------------------------------------------- the wallet handlers' side


def change_event(before: Subscriber | None, after: Subscriber | None) -> WebhookEvent | None:
    """Which event a change from ``before`` to ``after`` (None: no subscription) is, if any (rule 2)."""
    if before is None:
        return WebhookEvent.SUBSCRIBED if after is not None else None
    if after is None:
        return WebhookEvent.UNSUBSCRIBED
    return WebhookEvent.UPDATED if set(before.scope) != set(after.scope) else None


async def record_change(
    conn: AsyncConnection, project: Project, before: Subscriber | None, after: Subscriber | None, *, now_ms: int
) -> int:
    """Queue the event of this change for each of the project's webhooks that wants it, in the caller's
    transaction (rule 1); how many rows were queued."""
    event = change_event(before, after)
    subscriber = after or before
    if event is None or subscriber is None:
        return 0
    hooks = (
        await conn.execute(
            select(dapp_webhooks.c.id, dapp_webhooks.c.events).where(dapp_webhooks.c.project == project.id)
        )
    ).all()
    targets = [h.id for h in hooks if event.value in orjson.loads(h.events)]
    if not targets:
        return 0
    # one body for every webhook of the project: its id names the change, so a dapp with two webhooks
    # into one backend can tell they carry the same event
    payload = orjson.dumps(
        {
            "id": str(uuid.uuid4()), "event": event.value, "account": subscriber.account,
            "app_domain": project.app_domain, "project_id": project.project_id,
            "notification_types": sorted(after.scope) if after is not None else [], "timestamp": now_ms,
        }
    ).decode()
    await conn.execute(
        webhook_events.insert(),
        [
            {"webhook": t, "event": event.value, "account": subscriber.account, "payload": payload,
             "created_at": now_ms, "delivered_at": None}
            for t in targets
        ],
    )
    return len(targets)


# ------------------------------------------------------------------------------- the delivery side


def _has_pending() -> Any:
    return exists().where(webhook_events.c.webhook == dapp_webhooks.c.id, webhook_events.c.delivered_at.is_(None))


async def _due(
    conn: AsyncConnection, now_ms: int, limit: int, exclude: Collection[str]
) -> tuple[list[Any], int | None]:
    """Up to ``limit`` webhooks with pending events whose next attempt is due, and when the next other is."""
    due: list[Any] = []
    if limit > 0:
        query = (
            select(dapp_webhooks.c.id, dapp_webhooks.c.url, dapp_webhooks.c.secret)
            .where(dapp_webhooks.c.next_attempt_at <= now_ms, _has_pending())
            .order_by(dapp_webhooks.c.next_attempt_at, dapp_webhooks.c.id)
            .limit(limit)
        )
        if exclude:
            query = query.where(dapp_webhooks.c.id.not_in(list(exclude)))
        due = list((await conn.execute(query)).all())
    later = (
        await conn.execute(
            select(func.min(dapp_webhooks.c.next_attempt_at)).where(
                dapp_webhooks.c.next_attempt_at > now_ms, _has_pending()
            )
        )
    ).scalar_one()
    return due, None if later is None else int(later)


async def _claim(conn: AsyncConnection, webhook_id: str, now_ms: int, token: int) -> bool:
    result = await conn.execute(
        update(dapp_webhooks)
        .where(dapp_webhooks.c.id == webhook_id, dapp_webhooks.c.next_attempt_at <= now_ms)
        .values(next_attempt_at=token)
    )
    return result.rowcount == 1


async def _pending(conn: AsyncConnection, webhook_id: str, limit: int) -> list[_Pending]:
    rows = await conn.execute(
        select(webhook_events.c.id, webhook_events.c.event, webhook_events.c.payload, webhook_events.c.created_at)
        .where(webhook_events.c.webhook == webhook_id, webhook_events.c.delivered_at.is_(None))
        .order_by(webhook_events.c.id)
        .limit(limit)
    )
    return [_Pending(int(r.id), r.event, r.payload, int(r.created_at)) for r in rows]


async def _holds(conn: AsyncConnection, claim: _Claim) -> bool:
    value = (
        await conn.execute(select(dapp_webhooks.c.next_attempt_at).where(dapp_webhooks.c.id == claim.webhook))
    ).scalar_one_or_none()
    return value == claim.token


async def _record_delivered(conn: AsyncConnection, claim: _Claim, event_id: int, now_ms: int) -> bool:
    """Mark the event delivered; whether the claim is still ours (False: stop, someone else has the queue)."""
    done = await conn.execute(
        update(webhook_events)
        .where(webhook_events.c.id == event_id, webhook_events.c.delivered_at.is_(None))
        .values(delivered_at=now_ms)
    )
    await conn.execute(
        update(dapp_webhooks)
        .where(dapp_webhooks.c.id == claim.webhook)
        .values(delivered=dapp_webhooks.c.delivered + (done.rowcount or 0), attempts=0, last_error=None)
    )
    return await _holds(conn, claim)


async def _record_failure(
    conn: AsyncConnection, claim: _Claim, error: str, now_ms: int, delay: Callable[[int], float]
) -> tuple[int, float] | None:
    """Count a failed attempt, drop events past their age (rule 6) and set the retry time; ``(dropped, wait
    in seconds)``, or None when the claim was no longer ours (nothing written)."""
    attempts = (
        await conn.execute(
            select(dapp_webhooks.c.attempts).where(
                dapp_webhooks.c.id == claim.webhook, dapp_webhooks.c.next_attempt_at == claim.token
            )
        )
    ).scalar_one_or_none()
    if attempts is None:
        return None
    dropped = await conn.execute(
        delete(webhook_events).where(
            webhook_events.c.webhook == claim.webhook, webhook_events.c.delivered_at.is_(None),
            webhook_events.c.created_at < now_ms - int(spec.WEBHOOK_EVENT_MAX_AGE * 1000),
        )
    )
    wait = delay(int(attempts) + 1)
    await conn.execute(
        update(dapp_webhooks)
        .where(dapp_webhooks.c.id == claim.webhook)
        .values(
            attempts=dapp_webhooks.c.attempts + 1, failed=dapp_webhooks.c.failed + 1 + (dropped.rowcount or 0),
            last_error=error[:_ERROR_MAX], next_attempt_at=now_ms + int(wait * 1000),
        )
    )
    return dropped.rowcount or 0, wait


async def _release(conn: AsyncConnection, claim: _Claim, now_ms: int) -> None:
    await conn.execute(
        update(dapp_webhooks)
        .where(dapp_webhooks.c.id == claim.webhook, dapp_webhooks.c.next_attempt_at == claim.token)
        .values(next_attempt_at=now_ms)
    )


async def _purge_delivered(conn: AsyncConnection, before_ms: int) -> int:
    result = await conn.execute(
        delete(webhook_events).where(
            and_(webhook_events.c.delivered_at.is_not(None), webhook_events.c.delivered_at < before_ms)
        )
    )
    return int(result.rowcount or 0)


class WebhookDispatcher:
    """Delivers the outbox: one background task per server process (``run``), woken when a wallet
    request may have queued events and every ``poll_interval`` for other replicas' events and retries.

    Time and randomness are injected (``clock`` in seconds, ``rng`` in [0, 1)) so retry schedules are
    tested without sleeping; ``http`` replaces the client (tests). ``guard`` says which hosts may be posted to
    (default: public addresses only)."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, timeout: float = spec.WEBHOOK_HTTP_TIMEOUT,
        retry_base: float = spec.WEBHOOK_RETRY_BASE, retry_max: float = spec.WEBHOOK_RETRY_MAX,
        concurrency: int = spec.WEBHOOK_CONCURRENCY, lease: float = spec.WEBHOOK_CLAIM_LEASE,
        poll_interval: float = spec.WEBHOOK_POLL_INTERVAL, rng: Callable[[], float] = random.random,
        http: httpx.AsyncClient | None = None, guard: NetGuard | None = None,
    ) -> None:
        if lease <= timeout:
            raise ValueError("the claim lease must outlast one request (lease > timeout)")
        self.clock = clock
        self.timeout = timeout
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.concurrency = concurrency
        self.lease = lease
        self.poll_interval = poll_interval
        self.rng = rng
        self.guard = guard if guard is not None else NetGuard()
        self._http = http or self._client()
        self._wake = asyncio.Event()
        self._running: dict[str, tuple[_Claim, asyncio.Task[None]]] = {}  # webhook id -> its delivery

    def _client(self) -> httpx.AsyncClient:
        # redirects are never followed: the URL registered is the URL posted to (and signed for)
        return httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, trust_env=False)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def wake(self) -> None:
        """Look at the outbox now (call after committing events)."""
        self._wake.set()

    def wallet_message_handled(self, tag: int) -> None:
        """Called after each wallet request was handled: wake only for those that can queue events."""
        if tag in _CHANGING_TAGS:
            self._wake.set()

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th consecutive failure (rule 5)."""
        nominal = min(self.retry_base * 2.0 ** min(max(attempts - 1, 0), 40), self.retry_max)
        return nominal * (1 - 0.2 * self.rng())

    # ------------------------------------------------------------------------------------ loop

    async def run(self, db: Database) -> None:
        """Deliver until cancelled; the HTTP client is closed on the way out."""
        last_purge = self.clock()
        if self._http.is_closed:  # a server started again after a stop
            self._http = self._client()
        try:
            while True:
                self._wake.clear()
                next_due: float | None = None
                try:
                    next_due = await self.dispatch(db)
                    if self.clock() - last_purge >= spec.NOTIFY_PURGE_INTERVAL:
                        last_purge = self.clock()
                        async with db.write() as conn:
                            await _purge_delivered(conn, self._now_ms() - int(spec.WEBHOOK_DELIVERED_KEEP * 1000))
                except Exception as exc:  # the database is restarting: look again at the next poll
                    log.warning("webhook outbox unavailable: %s: %s", type(exc).__name__, exc)
                delay = self.poll_interval if next_due is None else min(self.poll_interval, max(next_due, 0.005))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            await self.aclose(db)

    async def dispatch(self, db: Database) -> float | None:
        """One round: claim due webhooks into the free delivery slots and start delivering them; the seconds
        until another webhook is due (None: nothing scheduled)."""
        now_ms = self._now_ms()
        free = self.concurrency - len(self._running)
        async with db.read() as conn:
            due, later = await _due(conn, now_ms, free, self._running.keys())
        claims: list[_Claim] = []
        if due:
            token = now_ms + int(self.lease * 1000)
            async with db.write() as conn:
                for row in due:
                    if await _claim(conn, row.id, now_ms, token):
                        claims.append(_Claim(row.id, row.url, row.secret, token))
        for claim in claims:
            self._running[claim.webhook] = (claim, asyncio.create_task(self._deliver(db, claim), name="webhook"))
        return None if later is None else (later - now_ms) / 1000

    async def drain(self, db: Database) -> None:
        """Deliver everything due now and wait for it (tests, with an injected clock)."""
        while True:
            await self.dispatch(db)
            if not self._running:
                return
            await asyncio.gather(*(task for _, task in self._running.values()), return_exceptions=True)

    async def aclose(self, db: Database | None = None) -> None:
        """Stop delivering and close the client; with ``db``, hand back the queues that were being
        delivered, so a restarted server resumes them at once instead of after the lease."""
        running = list(self._running.values())
        for _, task in running:
            task.cancel()
        for _, task in running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if db is not None and running:
            try:
                async with asyncio.timeout(5), db.write() as conn:
                    for claim, _ in running:
                        await _release(conn, claim, self._now_ms())
            except Exception as exc:  # the leases end by themselves
                log.info("could not hand back %d webhook queue(s): %s", len(running), exc)
        await self._http.aclose()

    # ------------------------------------------------------------------------------- delivery

    async def _deliver(self, db: Database, claim: _Claim) -> None:
        """Send the claimed webhook's pending events in order until none is left, one fails, or the lease
        is about to end (then hand the queue back: it is due again at once, for whichever process)."""
        try:
            out_of_time = False
            while not out_of_time:
                async with db.read() as conn:
                    events = await _pending(conn, claim.webhook, spec.WEBHOOK_PAGE)
                if not events:
                    break
                for event in events:
                    if self._now_ms() + int((self.timeout + 1) * 1000) >= claim.token:
                        out_of_time = True
                        break
                    error = await self._post(claim, event)
                    if error is None:
                        async with db.write() as conn:
                            if not await _record_delivered(conn, claim, event.id, self._now_ms()):
                                return  # deleted, or the lease passed to another process
                        continue
                    async with db.write() as conn:
                        outcome = await _record_failure(conn, claim, error, self._now_ms(), self.retry_delay)
                    if outcome is not None:
                        dropped, wait = outcome
                        log.info("webhook %s: event %d failed (%s); retry in %.1f s%s", claim.webhook, event.id,
                                 error, wait, f"; dropped {dropped} event(s) past their age" if dropped else "")
                    return
            async with db.write() as conn:
                await _release(conn, claim, self._now_ms())
        except Exception:  # the lease ends and the queue is taken again
            log.exception("webhook %s: delivery interrupted", claim.webhook)
        finally:
            self._running.pop(claim.webhook, None)
            self._wake.set()  # a free slot, and events may have come while this queue was held

    async def _post(self, claim: _Claim, event: _Pending) -> str | None:
        """POST one event; None when the receiver answered 2xx, else what went wrong (for last_error)."""
        body = event.payload.encode()
        headers = {
            "content-type": "application/json",
            "user-agent": "wcnotify-webhooks/1",
            spec.WEBHOOK_HEADER_SIGNATURE: signature_header(claim.secret, int(self.clock()), body),
            spec.WEBHOOK_HEADER_EVENT: event.event,
            spec.WEBHOOK_HEADER_DELIVERY: str(event.id),
        }
        try:
            async with asyncio.timeout(self.timeout):
                url = httpx.URL(claim.url)
                address = await self.guard.check(url.host, url.port or (443 if url.scheme == "https" else 80))
                target, host, extensions = pinned(url, address)  # connect to the address checked, nowhere else
                return await self._send(target, body, {**headers, **host}, extensions)
        except NonPublicAddressError as exc:
            return f"refused, no connection made: {exc}"
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def _send(
        self, url: httpx.URL, body: bytes, headers: dict[str, str], extensions: dict[str, Any]
    ) -> str | None:
        async with self._http.stream("POST", url, content=body, headers=headers, extensions=extensions) as response:
            status = response.status_code
            if 200 <= status < 300:
                await _read_at_most(response, _RESPONSE_READ_MAX)
                return None
            text = (await _read_at_most(response, 200)).decode(errors="replace")
            error = f"HTTP {status}"
            if 300 <= status < 400:
                error += " (redirects are not followed: register the final URL)"
            snippet = " ".join(text.split())[:150]
            return f"{error}: {snippet}" if snippet else error


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    data = b""
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit]
