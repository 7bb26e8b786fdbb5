"""Every table of the keys and notify servers, as SQLAlchemy Core ``Table`` objects.

Conventions, chosen so one set of statements serves SQLite and PostgreSQL:
* ids are UUID strings (``String(36)``, lowercase, canonical), the same text the wire carries;
* ``*_at`` columns are Unix milliseconds (``BigInteger``), ``expiry`` columns Unix seconds (the wire's unit);
* ``address`` columns hold the lowercase account address, so lookups are chain-agnostic (the reference's
  ``get_address_lower`` index): ``eip155:1:0xAB…`` and ``eip155:10:0xab…`` are the same subscriber;
* key material is lowercase hex.

The schema is created and changed only by the Alembic migrations in ``migrations/versions``; this module
describes the result for the queries (a test checks the two agree).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# -------------------------------------------------------------------------------------- keys server

identities = Table(
    "keys_identities",
    metadata,
    Column("identity_key", String(64), primary_key=True),  # multibase z6Mk…, without "did:key:"
    Column("account", String(200), nullable=False),  # CAIP-10 as signed (the CACAO's p.iss minus did:pkh:)
    Column("address", String(128), nullable=False),
    Column("cacao", Text, nullable=False),  # the CACAO JSON as received, served back verbatim
    Column("created_at", BigInteger, nullable=False),
    Index(None, "address"),
)

# ------------------------------------------------------------------------------------ notify server

projects = Table(
    "projects",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(64), nullable=False, unique=True),  # the public id in URLs
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("icons", Text, nullable=False, default="[]"),  # JSON list of URLs
    Column("secret_hash", String(64), nullable=False),  # sha256 hex of the API secret
    # after POST /v1/{projectId}/secret/rotate with a grace period: the replaced secret's hash, accepted until
    # previous_secret_expires_at (Unix ms); both NULL when no old secret is in its grace period
    Column("previous_secret_hash", String(64)),
    Column("previous_secret_expires_at", BigInteger),
    Column("app_domain", String(253), unique=True),  # set by subscribe-topic
    Column("topic", String(64), unique=True),  # sha256(subscribe public key)
    Column("subscribe_private", String(64)),
    Column("subscribe_public", String(64)),
    Column("authentication_private", String(64)),
    Column("authentication_public", String(64)),
    Column("created_at", BigInteger, nullable=False),
    Column("listed", Boolean, nullable=False, default=False, server_default=false()),  # in GET /v1/apps
    Column("welcome", Text),  # JSON {enabled, type, title, body, url}: sent once on a first subscribe
)

notification_types = Table(
    "notification_types",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("image_urls", Text, nullable=False, default="{}"),  # JSON {sm, md, lg}
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("project", "name"),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("account", String(200), nullable=False),  # as the wallet first gave it
    Column("address", String(128), nullable=False),
    Column("sym_key", String(64), nullable=False, unique=True),
    Column("topic", String(64), nullable=False, unique=True),
    Column("expiry", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("project", "address"),  # one subscription per address per app, whatever the chain
    Index(None, "address"),
)

subscriber_scopes = Table(
    "subscriber_scopes",
    metadata,
    Column("subscriber", String(36), ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("type_id", String(36), nullable=False),
    PrimaryKeyConstraint("subscriber", "type_id"),
    Index(None, "type_id", "subscriber"),  # a type's subscribers in id order: a broadcast's audience (0005)
)

watchers = Table(
    "watchers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account", String(200), nullable=False),
    Column("address", String(128), nullable=False),
    Column("project", String(36), ForeignKey("projects.id", ondelete="CASCADE")),  # NULL: all apps
    Column("did_key", String(128), nullable=False, unique=True),  # the watching client's identity key
    Column("sym_key", String(64), nullable=False),
    Column("expiry", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "address"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("notification_id", String(255), nullable=False),  # the dapp's idempotency key
    Column("type", String(36), nullable=False),
    Column("title", String(255), nullable=False),
    Column("body", Text, nullable=False),
    Column("icon", String(255)),
    Column("url", String(255)),
    Column("created_at", BigInteger, nullable=False),
    Column("withdrawn_at", BigInteger),  # DELETE …/notifications/{id}: rows still queued were withdrawn
    UniqueConstraint("project", "notification_id"),
    Index(None, "project", "created_at"),  # the console's newest first (migration 0004)
)

# the queue and the inbox in one, as the reference: a row per (notification, subscriber)
subscriber_notifications = Table(
    "subscriber_notifications",
    metadata,
    Column("id", String(36), primary_key=True),  # the msg.id the wallet sees
    Column("notification", String(36), ForeignKey("notifications.id", ondelete="CASCADE"), nullable=False),
    Column("subscriber", String(36), ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    # queued|processing|published|failed|withdrawn; while processing, next_attempt_at is the claim's
    # deadline, after which another worker may take the row again (its claimer crashed)
    Column("status", String(16), nullable=False, default="queued"),
    Column("is_read", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),  # the notification's, copied for keyset paging
    Column("updated_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False, default=0),
    Column("last_error", String(255)),
    UniqueConstraint("notification", "subscriber"),
    Index(None, "subscriber", "created_at", "id"),
    Index(None, "status", "next_attempt_at"),
)

# a broadcast's audience in parts (migration 0005): the subscribers of the notification's type, created by
# audience_at, with no delivery row for it yet, and an id in (after_id, upto_id] (no upper bound when NULL).
# A delivery worker takes a part, publishes the next page of it and writes those rows, as published, in the
# same transaction that moves done_to; so the request writes one row per part, not one per recipient.
broadcast_parts = Table(
    "broadcast_parts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("notification", String(36), ForeignKey("notifications.id", ondelete="CASCADE"), nullable=False),
    Column("audience_at", BigInteger, nullable=False),  # ms: subscribers created later are not in it
    Column("after_id", String(36), nullable=False),  # exclusive lower bound on the subscriber id ("": none)
    Column("upto_id", String(36)),  # inclusive upper bound; NULL: none (the last part)
    Column("done_to", String(36), nullable=False),  # the last subscriber id published (after_id at first)
    # recipients not yet published: counted down as pages go (an estimate, for /metrics); exact once the part
    # is withdrawn or failed, when it is what the status reports as such
    Column("pending", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # open|done|withdrawn|failed
    Column("held_until", BigInteger, nullable=False, default=0),  # ms: a SQLite worker's lease on the part
    Column("created_at", BigInteger, nullable=False),
    Index(None, "status", "created_at"),
    Index(None, "notification"),
)

# webhooks to dapps: a URL of a project, for some of the events subscribed|updated|unsubscribed
dapp_webhooks = Table(
    "dapp_webhooks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project", String(36), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("secret", String(64), nullable=False),  # the HMAC-SHA256 key, shown to the dapp at creation
    Column("events", Text, nullable=False),  # JSON list of event names
    Column("created_at", BigInteger, nullable=False),
    # delivery state of the whole webhook: events go out in order, so a failing receiver holds its queue
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),  # consecutive failures
    Column("next_attempt_at", BigInteger, nullable=False, default=0, server_default="0"),  # also a lease
    Column("last_error", String(255)),
    Column("delivered", BigInteger, nullable=False, default=0, server_default="0"),
    Column("failed", BigInteger, nullable=False, default=0, server_default="0"),  # failed attempts, ever
    Index(None, "project"),
)

# the durable outbox of webhook events, one row per (webhook, event); id order is delivery order
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("webhook", String(36), ForeignKey("dapp_webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(16), nullable=False),
    Column("account", String(200), nullable=False),
    Column("payload", Text, nullable=False),  # the JSON body POSTed, fixed when the event happened
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger),  # NULL while pending
    Index(None, "webhook", "delivered_at", "id"),
)

# relay messages already handled: the relay retries a webhook on 5xx and a replayed ciphertext has the
# same id, so each wallet request changes state at most once. The answer is kept with it: when the answer
# could not be published the first time, the retry publishes the stored one (same ciphertext, same id)
# instead of running the request again.
handled_messages = Table(
    "handled_messages",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),  # Unix seconds: kept for the message's TTL
    Column("response", Text),  # JSON: the relay publish params of the answer, or null when none
    Column("subscribe_topic", String(64)),  # a topic the request made the server subscribe to
    Index(None, "expires_at"),
)
