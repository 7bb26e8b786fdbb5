"""What one notify server process holds: configuration, database, relay link, background jobs.

Start-up never waits for the relay: the server serves HTTP at once and a background task keeps trying
to fetch the relay's key, register the watch webhook and subscribe every topic (in batches of 500),
then repeats that daily (a relay that lost its state learns it again). ``/health`` says whether the
relay link is up. Replicas hold no state but the database; they all derive the same keys from the seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from wcnotify import spec
from wcnotify.keys.client import IdentityResolver
from wcnotify.notify import store
from wcnotify.notify.delivery import Deliverer, DeliveryConfig
from wcnotify.notify.handlers import Outcome, RelayEvent, ServerFault, WalletHandlers
from wcnotify.notify.identity import ServerIdentity
from wcnotify.notify.metrics import NotifyMetrics
from wcnotify.notify.netguard import NetGuard
from wcnotify.notify.ratelimit import SEND_RATE, SUBSCRIBER_RATE, Rate, RateLimits
from wcnotify.notify.relay_link import RelayLink
from wcnotify.notify.store import Database
from wcnotify.notify.webhooks import WebhookDispatcher
from wcnotify.relay.client import RelayClientError
from wcnotify.storage import open_database

log = logging.getLogger("wcnotify.notify")


@dataclass(frozen=True)
class NotifyConfig:
    relay_url: str
    keys_urls: tuple[str, ...]  # the keys servers a wallet may name in ksu
    host: str = "127.0.0.1"
    port: int = 8082
    database_url: str = "sqlite:///wcnotify-notify.db"
    public_url: str | None = None  # how the relay and wallets reach us; default http://host:port
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    seed: str = ""
    relay_retry_max: float = 30.0  # seconds between relay set-up attempts, at most
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    webhook_timeout: float = spec.WEBHOOK_HTTP_TIMEOUT  # seconds per POST to a dapp webhook
    webhook_retry_base: float = spec.WEBHOOK_RETRY_BASE  # seconds before a webhook's first retry (doubled)
    # rate limits (notify/ratelimit.py): in this process, or in Redis when replicas share redis_url; None
    # switches a bucket off
    redis_url: str | None = None
    redis_prefix: str = spec.NOTIFY_RATE_REDIS_PREFIX  # every rate-limit key of this deployment starts so
    send_rate: Rate | None = SEND_RATE  # /notify requests per project: (tokens per second, burst)
    subscriber_rate: Rate | None = SUBSCRIBER_RATE  # notifications per subscriber: (tokens per second, burst)
    wallet_rates: bool = True  # the wallet-request buckets of spec.NOTIFY_WALLET_RATES (subscribe, watch, delete…)
    metrics_public: bool = False  # GET /metrics without the admin token (for a private port)
    # let dapps' webhooks and the console's did.json check reach loopback, private, link-local… addresses
    # (notify/netguard.py); off by default, on in `wcnotify up` and local test stacks
    allow_private_urls: bool = False


class NotifyService:
    """Everything one notify server process holds; the FastAPI app's routes use it."""

    def __init__(self, config: NotifyConfig, public_url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self.identity = ServerIdentity.from_seed(config.seed)
        self.relay = RelayLink(config.relay_url, self.identity.relay, self.public_url, clock=clock)
        self.resolver = IdentityResolver(config.keys_urls, clock=clock)
        self.relay_ready = asyncio.Event()
        # what the server may connect to for a dapp (tests replace net_guard.resolver to fake DNS)
        self.net_guard = NetGuard(allow_private=config.allow_private_urls)
        self.webhooks = WebhookDispatcher(clock=clock, timeout=config.webhook_timeout,
                                          retry_base=config.webhook_retry_base, guard=self.net_guard)
        self.limits = RateLimits.open(config.redis_url, config.redis_prefix, send=config.send_rate,
                                      subscriber=config.subscriber_rate, wallet=config.wallet_rates)
        self.metrics = NotifyMetrics(self.limits)
        self._db: Database | None = None
        self._handlers: WalletHandlers | None = None
        self._deliverer: Deliverer | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def db(self) -> Database:
        assert self._db is not None, "the database opens in the app's lifespan"
        return self._db

    @property
    def deliverer(self) -> Deliverer:
        assert self._deliverer is not None, "the delivery workers start in the app's lifespan"
        return self._deliverer

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        # every delivery worker holds a connection while it publishes (on PostgreSQL its batch's row locks), and
        # the API, the webhooks outbox and the sweeper need theirs meanwhile. With SQLAlchemy's default of 5,
        # 8 workers made the pool close and reopen connections all through a broadcast (35 PostgreSQL sessions
        # for a two-round fan-out bench instead of 23, a backend forked for each)
        pool = self.config.delivery.workers + spec.NOTIFY_DB_POOL_BEYOND_WORKERS
        self._db = Database(await open_database(self.config.database_url, pool_size=pool))
        self._handlers = WalletHandlers(self.db, self.resolver, self.identity, clock=self.clock, limits=self.limits)
        self._deliverer = Deliverer(self.db, self.relay, config=self.config.delivery, clock=self.clock)
        self.metrics.attach(self._deliverer)
        self._tasks = [
            asyncio.create_task(self.deliverer.run(), name="delivery"),
            asyncio.create_task(self._relay_setup_loop(), name="relay-setup"),
            asyncio.create_task(self.relay.run_receipts(), name="relay-receipts"),
            asyncio.create_task(self._purge_loop(), name="purge"),
            asyncio.create_task(self.webhooks.run(self.db), name="webhooks"),
        ]
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.relay.aclose()
            await self.resolver.aclose()
            await self.limits.aclose()
            await self.db.close()

    # ----------------------------------------------------------------------------- wallet messages

    async def process(self, event: RelayEvent) -> Outcome:
        """Handle one wallet message and carry out what it asks of the relay (raises to be retried)."""
        assert self._handlers is not None
        outcome = await self._handlers.handle(event)
        self.webhooks.wallet_message_handled(event.tag)  # committed: its webhook events can go out
        if outcome.subscribe:
            await self.relay.subscribe(outcome.subscribe)
        if outcome.publish:
            await self.relay.publish(outcome.publish)
        if outcome.unsubscribe:
            with contextlib.suppress(RelayClientError):  # a stale subscription only costs the relay a little
                await self.relay.unsubscribe(outcome.unsubscribe)
        self.relay.receipt(event.topic, event.message_id)
        if outcome.queued:  # after the answer: the wallet learns of the subscription before its welcome
            self.deliverer.wake()
        return outcome

    # ------------------------------------------------------------------------------ background

    async def sync_relay(self) -> None:
        """Fetch the relay key, register the webhook, subscribe every topic we answer on, and handle what
        the relay's mailbox kept for us meanwhile (requests sent while we were away or unsubscribed)."""
        await self.relay.fetch_relay_key()
        await self.relay.register_webhook()
        async with self.db.read() as conn:
            topics = [self.identity.watch_topic, *await store.project_topics(conn)]
        await self._subscribe_and_catch_up(topics)
        after = ""
        while True:
            async with self.db.read() as conn:
                page = await store.subscriber_topics(conn, after, limit=spec.RELAY_BATCH_MAX)
            if not page:
                break
            await self._subscribe_and_catch_up(page)
            after = page[-1]

    async def _subscribe_and_catch_up(self, topics: list[str]) -> None:
        for start in range(0, len(topics), spec.RELAY_BATCH_MAX):
            chunk = topics[start : start + spec.RELAY_BATCH_MAX]
            await self.relay.subscribe(chunk)
            while True:
                events, more = await self.relay.fetch(chunk)
                for event in events:
                    try:
                        await self.process(event)
                    except (ServerFault, RelayClientError, SQLAlchemyError) as exc:
                        log.warning("catch-up of %s on %s failed: %s", event.tag, event.topic[:16], exc)
                if not more:
                    break

    async def _relay_setup_loop(self) -> None:
        delay = 0.2
        while True:
            try:
                await self.sync_relay()
            except Exception as exc:  # relay, httpx (/public-key), database: all retried the same way
                self.relay_ready.clear()
                log.warning("relay set-up failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.relay_retry_max)
                continue
            self.relay_ready.set()
            delay = 0.2
            await asyncio.sleep(spec.NOTIFY_RELAY_RENEW_INTERVAL)

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(spec.NOTIFY_PURGE_INTERVAL)
            try:
                async with self.db.write() as conn:
                    await store.purge_expired(conn, int(self.clock()))
            except SQLAlchemyError as exc:
                log.warning("purge failed: %s", exc)


def describe(config: NotifyConfig) -> dict[str, Any]:
    return {"relay": config.relay_url, "keys": list(config.keys_urls), "database": config.database_url}
