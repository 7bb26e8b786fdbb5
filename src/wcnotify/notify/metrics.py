"""Prometheus metrics of one notify server process, served at ``GET /metrics``.

Every series lives in a :class:`~prometheus_client.CollectorRegistry` owned by the service, never in the
global default registry: tests (and ``wcnotify up``) run several servers in one process, and each must
report only its own counts.

What is measured, and where:

* deliveries by this process: ``published``, ``refused`` (the relay refused a message; retried with
  backoff), ``failed`` (given up), relay outages: the :class:`~wcnotify.notify.delivery.Deliverer`'s plain
  counters, read at scrape time by :class:`_ServiceCollector` (the delivery code stays free of Prometheus);
* publish latency: from a batch's claim to the relay's acknowledgement, one observation per batch, through
  the Deliverer's ``on_published`` hook;
* deliveries this process holds and is publishing now (``in_flight``);
* the queue (``queued``, ``processing``) and the webhook backlog (``webhook_events`` not yet delivered):
  database-wide, so every replica reports the same value (aggregate with ``max``, not ``sum``). They are
  counted by :meth:`NotifyMetrics.refresh` just before a scrape is rendered, so there is no poller;
* rate-limit denials per bucket and Redis failures that made a limit fail open;
* HTTP requests by method, route template (never the raw path: project ids would explode the label
  cardinality) and status, and their latency, by :class:`HttpMetrics` middleware.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wcnotify.notify.ratelimit import RateLimits, RedisLimiter
from wcnotify.notify.sending import PROCESSING, QUEUED
from wcnotify.storage.tables import webhook_events

if TYPE_CHECKING:
    from wcnotify.notify.delivery import Deliverer
    from wcnotify.notify.store import Database

PREFIX = "wcnotify_notify_"
# publishing a batch is a signature and a seal per row plus one irn_batchPublish: milliseconds to seconds
PUBLISH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _ServiceCollector(Collector):
    """Counters kept as plain integers by the Deliverer and the rate limits, exported at scrape time."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self.deliverer: Deliverer | None = None

    def collect(self) -> Iterator[Metric]:
        d = self.deliverer
        for name, doc, value in (
            ("published", "Deliveries published to the relay by this process.", d.published if d else 0),
            ("refused", "Deliveries the relay refused (retried with backoff).", d.refused if d else 0),
            ("failed", "Deliveries given up (not published within the give-up time).", d.failed if d else 0),
            ("relay_outages", "Times delivery paused because the relay was unreachable.", d.outages if d else 0),
        ):
            yield CounterMetricFamily(PREFIX + name, doc, value=value)
        # on PostgreSQL a batch being published is only locked, so the database counts it as queued
        yield GaugeMetricFamily(PREFIX + "in_flight", "Deliveries this process is publishing now.",
                                value=d.in_flight if d else 0)
        denied = CounterMetricFamily(PREFIX + "rate_limited", "Requests (send, wallet) or deliveries (subscriber) "
                                     "refused by a rate limit.", labels=["bucket"])
        for bucket, count in self.limits.denied.items():
            denied.add_metric([bucket], count)
        yield denied
        limiter = self.limits.limiter
        errors = limiter.errors if isinstance(limiter, RedisLimiter) else 0
        yield CounterMetricFamily(PREFIX + "rate_limit_errors", "Rate-limit checks that failed open because "
                                  "Redis was unavailable.", value=errors)


class NotifyMetrics:
    """The registry and the series of one notify server process."""

    def __init__(self, limits: RateLimits) -> None:
        self.registry = CollectorRegistry()
        self._service = _ServiceCollector(limits)
        self.registry.register(self._service)
        self.publish_latency = Histogram(
            PREFIX + "publish_latency_seconds", "From claiming a batch of deliveries to the relay's acknowledgement.",
            buckets=PUBLISH_BUCKETS, registry=self.registry,
        )
        self.queue_depth = Gauge(PREFIX + "queue_depth", "Deliveries in the queue, all replicas (max, not sum).",
                                 ["status"], registry=self.registry)
        self.webhook_backlog = Gauge(PREFIX + "webhook_backlog", "Webhook events to dapps not yet delivered, all "
                                     "replicas (max, not sum).", registry=self.registry)
        self.http_requests = Counter(PREFIX + "http_requests", "HTTP requests by route template and status.",
                                     ["method", "route", "status"], registry=self.registry)
        self.http_latency = Histogram(PREFIX + "http_request_duration_seconds", "HTTP request latency by route "
                                      "template.", ["method", "route"], registry=self.registry)

    def attach(self, deliverer: Deliverer) -> None:
        """Report ``deliverer``'s counters and observe its publish latency (called when it starts)."""
        self._service.deliverer = deliverer
        deliverer.on_published = lambda _rows, seconds: self.publish_latency.observe(seconds)

    async def refresh(self, db: Database) -> None:
        """Count the queue and the webhook backlog (indexed counts; run per scrape, not on a timer)."""
        sn_counts = await self._service.deliverer.queue_depth() if self._service.deliverer else {}
        for status in (QUEUED, PROCESSING):
            self.queue_depth.labels(status).set(sn_counts.get(status, 0))
        async with db.read() as conn:
            backlog = await conn.scalar(
                select(func.count()).select_from(webhook_events).where(webhook_events.c.delivered_at.is_(None))
            )
        self.webhook_backlog.set(int(backlog or 0))

    async def render(self, db: Database) -> bytes:
        """The exposition text, with the database-wide gauges counted now."""
        await self.refresh(db)
        return generate_latest(self.registry)


class HttpMetrics:
    """ASGI middleware: count and time every HTTP request by its route template (``/{project_id}/notify``).

    The route is known only after routing, so it is read from the scope once the app has answered;
    unmatched paths share one label (``unmatched``) so a scanner cannot grow the series without bound.
    """

    def __init__(self, app: ASGIApp, metrics: NotifyMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_latency.labels(method, route).observe(time.perf_counter() - started)
