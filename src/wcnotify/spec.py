"""Every wire constant of the protocols wcnotify speaks, in one place.

Handlers dispatch on these tables (by tag, by act, by method name) instead of writing strings and numbers
inline, so a drift between two services cannot happen silently. Each block names the public source it
comes from (see ``shared/protocol.md``); nothing here is invented except where marked ``wcnotify``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final

# --------------------------------------------------------------------------------------------------------
# Time

MINUTE: Final = 60
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
THIRTY_DAYS: Final = 30 * DAY

# --------------------------------------------------------------------------------------------------------
# Every wcnotify service (serving.AsgiService)

# seconds a stopping service waits for open connections and running requests before it cancels them (uvicorn
# waits forever by default: one peer that stops reading kept a socket, and so a shutdown, open for good)
SERVICE_SHUTDOWN_GRACE: Final = 10.0

# --------------------------------------------------------------------------------------------------------
# Crypto (monorepo packages/utils/src/crypto.ts; crypto-envelopes.md)

KEY_LENGTH: Final = 32
IV_LENGTH: Final = 12
TAG_LENGTH: Final = 16


class EnvelopeType(IntEnum):
    """The first byte of an envelope."""

    TYPE_0 = 0  # sym key known for the topic
    TYPE_1 = 1  # sender X25519 public key embedded; receiver derives the sym key
    TYPE_2 = 2  # plaintext (Sign link mode only)


# did:key multicodec prefixes (varint of 0xed / 0xec)
MULTICODEC_ED25519_PUB: Final = b"\xed\x01"
MULTICODEC_X25519_PUB: Final = b"\xec\x01"
DID_KEY_PREFIX: Final = "did:key:"
DID_PKH_PREFIX: Final = "did:pkh:"
DID_WEB_PREFIX: Final = "did:web:"

# --------------------------------------------------------------------------------------------------------
# JWT (crypto-authentication.md; utils did-jwt, relay-auth)

JWT_ALG: Final = "EdDSA"
JWT_TYP: Final = "JWT"
JWT_LEEWAY: Final = 300  # seconds of clock skew tolerated on exp and iat (notify-server: exp + 300)
# Push-era clients wrote exp = iat_s + 86_400_000 (milliseconds added to seconds). Anything above this is
# taken to be milliseconds when an act allows it.
JWT_MS_THRESHOLD: Final = 10_000_000_000
RELAY_AUTH_TTL: Final = DAY  # JS CRYPTO_JWT_TTL
# wcnotify: a JWT larger than this is refused before it is parsed (a relay message is at most 98,304 bytes)
JWT_MAX_LENGTH: Final = 262_144


class Act(StrEnum):
    """JWT ``act`` claims. Final Notify (specs-HEAD authentication.md), Push era, relay and keys."""

    # final Notify
    NOTIFY_SUBSCRIPTION = "notify_subscription"
    NOTIFY_SUBSCRIPTION_RESPONSE = "notify_subscription_response"
    NOTIFY_MESSAGE = "notify_message"
    NOTIFY_MESSAGE_RESPONSE = "notify_message_response"
    NOTIFY_UPDATE = "notify_update"
    NOTIFY_UPDATE_RESPONSE = "notify_update_response"
    NOTIFY_DELETE = "notify_delete"
    NOTIFY_DELETE_RESPONSE = "notify_delete_response"
    NOTIFY_WATCH_SUBSCRIPTIONS = "notify_watch_subscriptions"
    NOTIFY_WATCH_SUBSCRIPTIONS_RESPONSE = "notify_watch_subscriptions_response"
    NOTIFY_SUBSCRIPTIONS_CHANGED = "notify_subscriptions_changed"
    NOTIFY_SUBSCRIPTIONS_CHANGED_RESPONSE = "notify_subscriptions_changed_response"
    NOTIFY_GET_NOTIFICATIONS = "notify_get_notifications"
    NOTIFY_GET_NOTIFICATIONS_RESPONSE = "notify_get_notifications_response"
    NOTIFY_MARK_NOTIFICATIONS_AS_READ = "notify_mark_notifications_as_read"
    NOTIFY_MARK_NOTIFICATIONS_AS_READ_RESPONSE = "notify_mark_notifications_as_read_response"
    # spec text name for the same response; accepted, never emitted
    NOTIFY_READ_NOTIFICATIONS_RESPONSE = "notify_read_notifications_response"
    # Notify with Sync (Aug 2023)
    NOTIFY_RECEIPT = "notify_receipt"
    # Push era
    PUSH_SUBSCRIPTION = "push_subscription"
    PUSH_MESSAGE = "push_message"
    # keys server
    UNREGISTER_IDENTITY = "unregister_identity"
    # relay watch webhooks
    IRN_WATCH_REGISTER = "irn_watchRegister"
    IRN_WATCH_UNREGISTER = "irn_watchUnregister"
    IRN_WATCH_EVENT = "irn_watchEvent"


# --------------------------------------------------------------------------------------------------------
# Client-to-client RPCs, dispatched by tag (notify-server src/spec.rs; notify-js constants/engine.ts)


@dataclass(frozen=True)
class RpcSpec:
    """One request/response pair: its method, tags, TTLs, acts and the param/result key holding the JWT."""

    method: str
    request_tag: int
    request_ttl: int
    response_tag: int | None
    response_ttl: int | None
    request_act: Act | None = None
    response_act: Act | None = None
    params_key: str | None = None
    result_key: str | None = None
    prompt: bool = False
    aliases: tuple[str, ...] = ()  # other method names seen on the wire for the same tag


NOTIFY_SUBSCRIBE: Final = RpcSpec(
    "wc_notifySubscribe", 4000, 300, 4001, THIRTY_DAYS,
    Act.NOTIFY_SUBSCRIPTION, Act.NOTIFY_SUBSCRIPTION_RESPONSE, "subscriptionAuth", "responseAuth",
)
NOTIFY_MESSAGE: Final = RpcSpec(
    "wc_notifyMessage", 4002, THIRTY_DAYS, 4003, THIRTY_DAYS,
    Act.NOTIFY_MESSAGE, Act.NOTIFY_MESSAGE_RESPONSE, "messageAuth", "responseAuth", prompt=True,
)
NOTIFY_DELETE: Final = RpcSpec(
    "wc_notifyDelete", 4004, THIRTY_DAYS, 4005, THIRTY_DAYS,
    Act.NOTIFY_DELETE, Act.NOTIFY_DELETE_RESPONSE, "deleteAuth", "responseAuth",
)
NOTIFY_UPDATE: Final = RpcSpec(
    "wc_notifyUpdate", 4008, 300, 4009, THIRTY_DAYS,
    Act.NOTIFY_UPDATE, Act.NOTIFY_UPDATE_RESPONSE, "updateAuth", "responseAuth",
)
NOTIFY_WATCH_SUBSCRIPTIONS: Final = RpcSpec(
    "wc_notifyWatchSubscriptions", 4010, 300, 4011, 300,
    Act.NOTIFY_WATCH_SUBSCRIPTIONS, Act.NOTIFY_WATCH_SUBSCRIPTIONS_RESPONSE,
    "watchSubscriptionsAuth", "responseAuth", aliases=("wc_notifyWatchSubscription",),
)
NOTIFY_SUBSCRIPTIONS_CHANGED: Final = RpcSpec(
    "wc_notifySubscriptionsChanged", 4012, 300, 4013, 300,
    Act.NOTIFY_SUBSCRIPTIONS_CHANGED, Act.NOTIFY_SUBSCRIPTIONS_CHANGED_RESPONSE,
    "subscriptionsChangedAuth", "responseAuth",
)
NOTIFY_GET_NOTIFICATIONS: Final = RpcSpec(
    "wc_notifyGetNotifications", 4014, 300, 4015, 300,
    Act.NOTIFY_GET_NOTIFICATIONS, Act.NOTIFY_GET_NOTIFICATIONS_RESPONSE, "auth", "auth",
)
NOTIFY_MARK_NOTIFICATIONS_AS_READ: Final = RpcSpec(
    "wc_notifyMarkNotificationsAsRead", 4016, 300, 4017, 300,
    Act.NOTIFY_MARK_NOTIFICATIONS_AS_READ, Act.NOTIFY_MARK_NOTIFICATIONS_AS_READ_RESPONSE, "auth", "auth",
    aliases=("wc_notifyNotificationsChanged",),
)
NOTIFY_NOOP_TAG: Final = 4050
NOTIFY_NOOP_TTL: Final = 300

NOTIFY_RPCS: Final[tuple[RpcSpec, ...]] = (
    NOTIFY_SUBSCRIBE, NOTIFY_MESSAGE, NOTIFY_DELETE, NOTIFY_UPDATE, NOTIFY_WATCH_SUBSCRIPTIONS,
    NOTIFY_SUBSCRIPTIONS_CHANGED, NOTIFY_GET_NOTIFICATIONS, NOTIFY_MARK_NOTIFICATIONS_AS_READ,
)
# request tag -> spec, the table the notify server dispatches on
NOTIFY_BY_REQUEST_TAG: Final = {rpc.request_tag: rpc for rpc in NOTIFY_RPCS}
NOTIFY_BY_RESPONSE_TAG: Final = {rpc.response_tag: rpc for rpc in NOTIFY_RPCS if rpc.response_tag is not None}
# tags the notify server asks the relay to watch (notify-server registers exactly these)
NOTIFY_SERVER_WATCHED_TAGS: Final = (4000, 4003, 4004, 4008, 4010, 4013, 4014, 4016)
# responses the final server receives and ignores
NOTIFY_IGNORED_TAGS: Final = (4003, 4013)

# Push era (specs-push rpc-methods.md; notify-js @dc0eaeb)
PUSH_MESSAGE: Final = RpcSpec("wc_pushMessage", 4002, THIRTY_DAYS, 4003, DAY)
PUSH_DELETE: Final = RpcSpec("wc_pushDelete", 4004, DAY, 4005, DAY)
PUSH_SUBSCRIBE: Final = RpcSpec(
    "wc_pushSubscribe", 4006, DAY, 4007, DAY, Act.PUSH_SUBSCRIPTION, None, "subscriptionAuth", "publicKey"
)
PUSH_UPDATE: Final = RpcSpec(
    "wc_pushUpdate", 4008, DAY, 4009, DAY, Act.PUSH_SUBSCRIPTION, None, "subscriptionAuth"
)
PUSH_PROPOSE: Final = RpcSpec(
    "wc_pushPropose", 4010, DAY, 4011, DAY, None, Act.PUSH_SUBSCRIPTION, None, "subscriptionAuth"
)
PUSH_REQUEST: Final = RpcSpec("wc_pushRequest", 4000, DAY, 4001, DAY, None, Act.PUSH_SUBSCRIPTION)
PUSH_RPCS: Final[tuple[RpcSpec, ...]] = (
    PUSH_MESSAGE, PUSH_DELETE, PUSH_SUBSCRIBE, PUSH_UPDATE, PUSH_PROPOSE, PUSH_REQUEST,
)
PUSH_BY_METHOD: Final = {rpc.method: rpc for rpc in PUSH_RPCS}

# Push proposal flow (protocol.md §7; protocol/proposal.py). The wallet answers an approval with the
# subscriptionAuth of the subscribe it ran: push_subscription (Push-era wallets) or notify_subscription (a
# wallet that subscribed with final Notify, as wcnotify's does). Both are accepted.
PUSH_PROPOSE_AUTH_ACTS: Final = (Act.PUSH_SUBSCRIPTION, Act.NOTIFY_SUBSCRIPTION)
PUSH_PROPOSE_SUBSCRIBE_TIMEOUT: Final = 10.0  # §7 step 4: the wallet waits this long for its subscribe answer
# wcnotify choices (no public source pins these)
PUSH_PROPOSE_APPROVAL_WAIT: Final = 5.0 * MINUTE  # dapp default wait for the user's answer (a pairing's life)
PUSH_PROPOSE_MAX_PARAMS_BYTES: Final = 16_384  # the encoded params of one wc_pushPropose
PUSH_PROPOSE_NAME_MAX: Final = 256  # metadata.name
PUSH_PROPOSE_DESCRIPTION_MAX: Final = 2048  # metadata.description
PUSH_PROPOSE_URL_MAX: Final = 2048  # metadata.url, each icon, redirect.native / redirect.universal
PUSH_PROPOSE_ICONS_MAX: Final = 16
PUSH_PROPOSE_SCOPE_MAX: Final = 64  # type names in one proposal
PUSH_PROPOSE_SCOPE_NAME_MAX: Final = 64  # a notification type name (the notify server's limit)
PUSH_PROPOSE_REASON_MAX: Final = 512  # a rejection reason

# Sync API (clients/core/sync; Kotlin/Swift SyncClient)
SYNC_SET: Final = RpcSpec("wc_syncSet", 5000, THIRTY_DAYS, None, None)
SYNC_DEL: Final = RpcSpec("wc_syncDel", 5002, THIRTY_DAYS, None, None)
SYNC_BY_TAG: Final = {SYNC_SET.request_tag: SYNC_SET, SYNC_DEL.request_tag: SYNC_DEL}
SYNC_MESSAGE_PREFIX: Final = "I authorize this app to sync my account: "
SYNC_MESSAGE_SUFFIX: Final = "\n\nRead more about it here: https://walletconnect.com/faq"
SYNC_DERIVATION_ROOT: Final = "m/77'/0'/0"
SYNC_STORE_PUSH_SUBSCRIPTION: Final = "com.walletconnect.notify.pushSubscription"
SYNC_STORE_NOTIFY_SUBSCRIPTION: Final = "com.walletconnect.notify.notifySubscription"
SYNC_STORE_PUSH_PROPOSAL: Final = "com.walletconnect.notify.pushProposal"
SYNC_STORES: Final = (SYNC_STORE_PUSH_SUBSCRIPTION, SYNC_STORE_NOTIFY_SUBSCRIPTION, SYNC_STORE_PUSH_PROPOSAL)
SYNC_PATH_CHUNK_BYTES: Final = 4  # each derivation index is one big-endian 4-byte chunk of the store name

# --------------------------------------------------------------------------------------------------------
# JSON-RPC 2.0 as WalletConnect uses it (walletconnect-utils jsonrpc/utils/src/format.ts)

JSONRPC_VERSION: Final = "2.0"
PAYLOAD_ID_ENTROPY_DIGITS: Final = 3  # payloadId(): Date.now() * 10**3 + 3 random digits, client to client
BIG_INT_RPC_ID_ENTROPY_DIGITS: Final = 6  # getBigIntRpcId(): Date.now() * 10**6 + 6 digits, client to relay
JS_MAX_SAFE_INTEGER: Final = 2**53 - 1  # Number.MAX_SAFE_INTEGER: larger JSON numbers lose precision in JS

# --------------------------------------------------------------------------------------------------------
# Relay (relay-server-rpc.md; rust relay_rpc)


class RelayMethod(StrEnum):
    PUBLISH = "irn_publish"
    BATCH_PUBLISH = "irn_batchPublish"
    SUBSCRIBE = "irn_subscribe"
    BATCH_SUBSCRIBE = "irn_batchSubscribe"
    SUBSCRIBE_BLOCKING = "irn_subscribeBlocking"
    BATCH_SUBSCRIBE_BLOCKING = "irn_batchSubscribeBlocking"
    UNSUBSCRIBE = "irn_unsubscribe"
    BATCH_UNSUBSCRIBE = "irn_batchUnsubscribe"
    SUBSCRIPTION = "irn_subscription"
    FETCH_MESSAGES = "irn_fetchMessages"
    BATCH_FETCH_MESSAGES = "irn_batchFetchMessages"
    BATCH_RECEIVE = "irn_batchReceive"
    WATCH_REGISTER = "irn_watchRegister"
    WATCH_UNREGISTER = "irn_watchUnregister"


# older names of the same methods; accepted and mapped
RELAY_METHOD_ALIAS_PREFIXES: Final = ("iridium_", "waku_")
RELAY_BATCH_MAX: Final = 500
RELAY_MIN_TTL: Final = 300
RELAY_MAX_TTL: Final = THIRTY_DAYS
RELAY_DEFAULT_TTL: Final = 6 * HOUR  # JS default publish TTL
RELAY_MAX_MESSAGE_BYTES: Final = 98_304
RELAY_PING_INTERVAL: Final = 20
RELAY_WATCH_MAX_TTL: Final = THIRTY_DAYS
RELAY_WATCH_MAX_PER_CLIENT: Final = 64
RELAY_WATCH_RETRY_MAX: Final = 3 * DAY
RELAY_WATCH_URL_MAX: Final = 256
RELAY_MIN_RPC_ID: Final = 1_000_000_000  # rust domain.rs
RELAY_MAX_RPC_ID: Final = 2**53  # ids above come back from JS as "<digits>n"
RELAY_RPC_ID_COUNTER_BITS: Final = 8  # rust MessageIdGenerator: (unix_ms << 8) | u8 counter
WS_CLOSE_AUTH_FATAL: Final = 3000  # the JS client does not reconnect after this close code
# wcnotify relay choices (no public source pins these)
RELAY_MAX_FRAME_BYTES: Final = 8 * 1024 * 1024  # a WebSocket frame or /rpc body; larger ones are refused
RELAY_MAILBOX_MAX_PER_TOPIC: Final = 1_000  # unexpired messages kept per topic before MailboxLimitExceeded
RELAY_FETCH_PAGE: Final = 100  # messages per irn_fetchMessages answer; the client repeats while hasMore
RELAY_BACKLOG_PAGE: Final = 1_000  # backlog pushed per page on subscribe; the next page once half is acked
RELAY_WS_IMPL: Final = "websockets-sansio"  # uvicorn WebSocket protocol (see RelayConfig.ws_impl)
RELAY_WS_READ_HIGH_WATER: Final = 16  # received messages waiting before the relay stops reading a socket
RELAY_RATE_PER_SECOND: Final = 500.0  # token-bucket refill per client id
RELAY_RATE_BURST: Final = 1_000  # token-bucket capacity per client id
RELAY_PURGE_INTERVAL: Final = 60  # seconds between sweeps of expired messages and acks
RELAY_PING_TIMEOUT: Final = 20  # seconds to wait for a pong before the socket is dropped
RELAY_REQUEST_TIMEOUT: Final = 10.0  # client side: seconds to wait for a relay answer
RELAY_RECONNECT_MIN: Final = 0.5  # client side: first reconnect delay, doubled up to the max
RELAY_RECONNECT_MAX: Final = 30.0
RELAY_TOPIC_HEX_LENGTH: Final = 64  # a topic is 32 bytes as lowercase hex
RELAY_HTTP_PATH_RPC: Final = "/rpc"
RELAY_HTTP_PATH_HEALTH: Final = "/health"
RELAY_HTTP_PATH_PUBLIC_KEY: Final = "/public-key"
RELAY_AUTH_QUERY_PARAM: Final = "auth"
# Redis scale-out (wcnotify relay --redis-url): mailbox keys and pub/sub channels share one prefix
RELAY_REDIS_KEY_PREFIX: Final = "wcnotify:relay:"
RELAY_REDIS_SUBSCRIBE_TIMEOUT: Final = 5.0  # seconds a subscribe waits for the node's pub/sub to listen
RELAY_REDIS_RECONNECT_MIN: Final = 0.1  # seconds before re-opening pub/sub after Redis went away, doubled
RELAY_REDIS_RECONNECT_MAX: Final = 5.0
RELAY_REDIS_TASK_STOP_TIMEOUT: Final = 1.0  # seconds a reconnect waits for the old connection's tasks to stop
RELAY_REDIS_PURGE_BATCH: Final = 500  # topics swept per purge script call (keeps each call short)
# watch webhooks: persistence and delivery (wcnotify choices)
RELAY_HTTP_SUBSCRIPTION_TTL: Final = THIRTY_DAYS  # a standing POST /rpc subscription; subscribing again renews it
RELAY_WATCH_DEDUPE_WINDOW: Final = 600  # seconds an event id is remembered, so nodes that all see it send it once
RELAY_WATCH_CLAIM_LEASE: Final = 30.0  # seconds a claimed event is hidden from other claims (> the HTTP timeout)
RELAY_WATCH_CLAIM_BATCH: Final = 64  # events claimed (and POSTed concurrently) per round
RELAY_WATCH_POLL_INTERVAL: Final = 1.0  # seconds between looks at the shared queue (other nodes' retries)
RELAY_WATCH_HTTP_TIMEOUT: Final = 10.0  # seconds per webhook POST before it counts as failed


class WatchType(StrEnum):
    SUBSCRIBER = "subscriber"
    PUBLISHER = "publisher"


class WatchStatus(StrEnum):
    ACCEPTED = "accepted"
    QUEUED = "queued"
    DELIVERED = "delivered"


class RelayError(IntEnum):
    """Relay JSON-RPC error codes (rust rpc/error.rs, JSON-RPC 2.0)."""

    AUTH = 3000
    TOO_MANY_REQUESTS = 3001
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL = -32603
    HANDLER = -32000


class RelayErrorTag(StrEnum):
    """The string tags the relay puts in ``error.data`` for -32000 handler errors."""

    TTL_TOO_SHORT = "TtlTooShort"
    TTL_TOO_LONG = "TtlTooLong"
    MAILBOX_LIMIT_EXCEEDED = "MailboxLimitExceeded"
    INVALID_TOPIC = "InvalidTopic"
    MESSAGE_TOO_LARGE = "MessageTooLarge"
    BATCH_LIMIT_EXCEEDED = "BatchLimitExceeded"
    BATCH_EMPTY = "BatchEmpty"
    WATCH_LIMIT_EXCEEDED = "WatchLimitExceeded"
    TOO_MANY_REQUESTS = "TooManyRequests"
    INVALID_WATCH = "InvalidWatch"  # wcnotify: a registerAuth/unregisterAuth JWT that cannot be accepted


# --------------------------------------------------------------------------------------------------------
# Notify (notify-server relay_webhook/error.rs; notify-js constants/errors.ts)


class NotifyError(IntEnum):
    CLIENT = -1  # every client-caused error on the notify server, with a human message
    INTERNAL = -32000


class SdkError(IntEnum):
    INVALID_PROPOSAL = 1000
    USER_REJECTED = 5000
    USER_UNSUBSCRIBED = 6000
    USER_HAS_EXISTING_SUBSCRIPTION = 6001
    APPROVAL_FAILED = 7002
    REJECTION_FAILED = 7003


SDK_ERROR_MESSAGES: Final = {
    SdkError.INVALID_PROPOSAL: "Invalid proposal.",
    SdkError.USER_REJECTED: "User rejected.",
    SdkError.USER_UNSUBSCRIBED: "User unsubscribed.",
    SdkError.USER_HAS_EXISTING_SUBSCRIPTION: "User has existing notify subscription with dapp.",
    SdkError.APPROVAL_FAILED: "Approval failed.",
    SdkError.REJECTION_FAILED: "Rejection failed.",
}
# a proposal rejection's error message (protocol.md §7): "User rejected. Reason: <r>."
SDK_USER_REJECTED_REASON_FORMAT: Final = SDK_ERROR_MESSAGES[SdkError.USER_REJECTED] + " Reason: {reason}."


class ProposalStatus(StrEnum):
    """wcnotify: ``status`` of a pushProposal Sync record (protocol/proposal.py): pending, then final."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"

NOTIFY_MJV: Final = "1"
NOTIFY_MAX_WATCHERS_PER_ACCOUNT: Final = 25
NOTIFY_WATCHER_TTL: Final = DAY
NOTIFY_HISTORY_MAX_LIMIT: Final = 50
NOTIFY_MARK_READ_MAX_IDS: Final = 1000
NOTIFY_TITLE_MAX: Final = 64
NOTIFY_BODY_MAX: Final = 255
NOTIFY_ICON_URL_MAX: Final = 255
NOTIFY_SEND_MAX_ACCOUNTS: Final = 500
NOTIFY_SUBSCRIBERS_LOOKUP_MAX: Final = 100  # accounts per POST /v1/{projectId}/subscribers
# POST /v1/{projectId}/secret/rotate: how long the replaced secret may keep working (its "grace_seconds"), so a
# dapp can roll the new one across several backends; 0 (the default) ends the old secret at once
NOTIFY_SECRET_GRACE_MAX: Final = 7 * DAY
NOTIFY_REASON_NOT_SUBSCRIBED_TO_TYPE: Final = "Client is not subscribed to this notification type"  # /notify failed[]
NOTIFY_REASON_RATE_LIMITED: Final = "Rate limit exceeded"  # /notify failed[]: the subscriber's bucket is empty
# the reference's buckets (reference-server.md §1.5), as COUNT/UNIT:BURST: /notify requests per project, and
# notifications per subscriber (about 48 a day once the burst is spent)
NOTIFY_SEND_RATE: Final = "2/s:20"
NOTIFY_SUBSCRIBER_RATE: Final = "2/h:50"
# Wallet requests (reference-server.md §1.5), checked once the request's JWT verified, so a bucket is spent only
# by its owner: (request tag, bucket key, rate). "client" is the JWT's iss (the identity key), "topic" the topic
# the request came on (a project's subscribe topic, or a subscription's).
NOTIFY_WALLET_RATES: Final = (
    (NOTIFY_SUBSCRIBE.request_tag, "client", "100/d:500"),  # subscribe, per client key
    (NOTIFY_SUBSCRIBE.request_tag, "topic", "1/s:50000"),  # subscribe, per project
    (NOTIFY_WATCH_SUBSCRIPTIONS.request_tag, "client", "1/s:100"),
    (NOTIFY_UPDATE.request_tag, "topic", "1/s:100"),
    (NOTIFY_DELETE.request_tag, "topic", "1/h:10"),
    (NOTIFY_GET_NOTIFICATIONS.request_tag, "topic", "2/s:100"),
    (NOTIFY_MARK_NOTIFICATIONS_AS_READ.request_tag, "topic", "2/s:100"),
)
NOTIFY_REASON_WALLET_RATE_LIMITED: Final = "Rate limit exceeded. Try again at {unix}"
NOTIFY_RATE_REDIS_PREFIX: Final = "wcnotify:notify:"  # default key prefix of a deployment's rate buckets
NOTIFY_SUBSCRIPTION_TTL: Final = THIRTY_DAYS  # a subscription's expiry, renewed by subscribe and update
NOTIFY_CLIENT_ERROR_CODE: Final = -1  # notify-server relay_webhook/error.rs: every client-caused error
NOTIFY_SERVER_ERROR_CODE: Final = -32000  # "Internal server error"
# wcnotify choices
NOTIFY_SEED_LABEL_KEY_AGREEMENT: Final = "wcnotify notify key agreement"
NOTIFY_SEED_LABEL_AUTHENTICATION: Final = "wcnotify notify authentication"
NOTIFY_SEED_LABEL_RELAY: Final = "wcnotify notify relay client"
NOTIFY_SUBSCRIBE_KEY_CLAIM: Final = "publicKey"  # hex Z in a new subscription's response (seed protocol)
NOTIFY_WEBHOOK_PATH: Final = "/v1/relay-webhook"

# Wallet SDK (wcnotify.wallet)
WALLET_HISTORY_CAP: Final = 1000  # notifications kept per subscription on a device; older ones are dropped
WALLET_RESPONSE_TIMEOUT: Final = 10.0  # seconds to wait for the notify server's answer to a wallet request
WALLET_WATCH_REFRESH: Final = 12 * HOUR  # re-watch well inside the server's 1-day watcher lifetime
WALLET_WATCH_OFFLINE: Final = 5 * MINUTE  # after a relay reconnect, re-watch (changes while away were missed)
WALLET_KEEPER_INTERVAL: Final = 30.0  # how often the client checks whether a watch needs renewing
WALLET_REGISTRY_PAGE: Final = 50
WALLET_REGISTRY_MAX: Final = 1000  # apps() stops paging here
NOTIFY_REQUEST_MAX_LIFETIME: Final = THIRTY_DAYS  # a wallet request JWT's exp may be at most this far ahead
NOTIFY_RELAY_WATCH_TTL: Final = THIRTY_DAYS  # the webhook registration's exp; renewed daily
NOTIFY_RELAY_RENEW_INTERVAL: Final = DAY
# s between two fetches of the relay's key prompted by a watch event signed by another key (a relay restarted
# with a new key; anyone can sign an event with a key of their own, so the fetches are spaced)
NOTIFY_RELAY_KEY_REFETCH_MIN: Final = 10.0
NOTIFY_PURGE_INTERVAL: Final = HOUR
NOTIFY_RECEIPT_FLUSH_SECONDS: Final = 1.0  # acks to the relay are batched this long (or RELAY_BATCH_MAX)
NOTIFY_MAX_BODY_BYTES: Final = 1_048_576  # HTTP request bodies above this get 413
NOTIFY_DOMAIN_MAX: Final = 253
NOTIFY_DELIVERY_BATCH: Final = RELAY_BATCH_MAX  # rows a delivery worker claims and publishes at once
NOTIFY_DELIVERY_WORKERS: Final = 4  # concurrent claim-build-publish loops per server process
NOTIFY_DB_POOL_BEYOND_WORKERS: Final = 6  # database connections kept besides one per delivery worker
NOTIFY_DELIVERY_LEASE: Final = 300  # s a claimed row stays "processing" before it is requeued (SQLite)
NOTIFY_DELIVERY_GIVE_UP: Final = DAY  # a row still unpublished this long after its notification is "failed"
NOTIFY_DELIVERY_BACKOFF: Final = (1.0, 300.0)  # s: first retry of a refused message, and the cap
NOTIFY_DELIVERY_POLL: Final = 1.0  # s between queue polls when idle (other replicas' sends, due retries)
NOTIFY_DELIVERY_OUTAGE_BACKOFF: Final = (0.5, 10.0)  # s: probing an unreachable relay, first and cap
DID_JSON_PATH: Final = "/.well-known/did.json"
NOTIFY_CONFIG_JSON_PATH: Final = "/.well-known/wc-notify-config.json"  # a dapp's own types file (protocol.md §4)
DID_JSON_CONTEXT: Final = ("https://www.w3.org/ns/did/v1", "https://w3id.org/security/suites/jws-2020/v1")
DID_FRAGMENT_SUBSCRIBE_KEY: Final = "wc-notify-subscribe-key"
DID_FRAGMENT_AUTHENTICATION_KEY: Final = "wc-notify-authentication-key"

# --------------------------------------------------------------------------------------------------------
# Identity / CACAO (identity-keys.md; notify-server auth.rs; relay_rpc auth/cacao)

CACAO_HEADER_EIP4361: Final = "eip4361"
CACAO_SIG_EIP191: Final = "eip191"
CACAO_SIG_EIP1271: Final = "eip1271"
CACAO_SIG_EIP6492: Final = "eip6492"
CACAO_VERSION: Final = "1"
KEYS_SERVER_DEFAULT_URL: Final = "https://keys.walletconnect.com"
IDENTITY_KEY_URL_PARAM: Final = "walletconnect_identity_key"
RECAP_PREFIX: Final = "urn:recap:"
RECAP_NOTIFY_RESOURCE: Final = "https://notify.walletconnect.com"
RECAP_ABILITY_ALL_APPS: Final = "manage/all-apps-notifications"
RECAP_ABILITY_DOMAIN_SUFFIX: Final = "-notifications"  # "manage/<domain>-notifications"

STATEMENT_THIS_DOMAIN: Final = (
    "I further authorize this app to send me notifications. Read more at https://walletconnect.com/notifications"
)
STATEMENT_ALL_DOMAINS: Final = (
    "I further authorize this app to view and manage my notifications for ALL apps. "
    "Read more at https://walletconnect.com/notifications-all-apps"
)
STATEMENT_ALL_DOMAINS_OLD: Final = (
    "I further authorize this app to view and manage my notifications for ALL apps. "
    "Read more at https://walletconnect.com/notifications"
)
STATEMENT_IDENTITY: Final = (
    "I further authorize this app to send and receive messages on my behalf using my WalletConnect "
    "identity. Read more at https://walletconnect.com/identity"
)
STATEMENT_IDENTITY_THIS_DOMAIN: Final = (
    "I further authorize this app to send and receive messages on my behalf for THIS domain using my "
    "WalletConnect identity. Read more at https://walletconnect.com/identity"
)
STATEMENT_IDENTITY_ALL_DOMAINS: Final = (
    "I further authorize this app to send and receive messages on my behalf for ALL domains using my "
    "WalletConnect identity. Read more at https://walletconnect.com/identity"
)
# statement -> True when it authorizes every app, False when it is limited to cacao.p.domain
STATEMENT_AUTHORIZES_ALL_APPS: Final = {
    STATEMENT_THIS_DOMAIN: False,
    STATEMENT_ALL_DOMAINS: True,
    STATEMENT_ALL_DOMAINS_OLD: True,
    STATEMENT_IDENTITY: True,
    STATEMENT_IDENTITY_THIS_DOMAIN: False,
    STATEMENT_IDENTITY_ALL_DOMAINS: True,
}
RECAP_STATEMENT_PREFIX: Final = (
    "I further authorize the stated URI to perform the following actions on my behalf:"
)

# keys server response envelope
KEYS_STATUS_SUCCESS: Final = "SUCCESS"
KEYS_STATUS_FAILURE: Final = "FAILURE"

# --------------------------------------------------------------------------------------------------------
# Pairing (pairing-uri.md)

PAIRING_URI_SCHEME: Final = "wc"
PAIRING_VERSION: Final = 2
PAIRING_RELAY_PROTOCOL: Final = "irn"
PAIRING_TTL: Final = 5 * MINUTE
PAIRING_PARAM_SYM_KEY: Final = "symKey"
PAIRING_PARAM_RELAY_PROTOCOL: Final = "relay-protocol"
PAIRING_PARAM_RELAY_DATA: Final = "relay-data"
PAIRING_PARAM_EXPIRY: Final = "expiryTimestamp"
PAIRING_PARAM_METHODS: Final = "methods"  # comma-separated; older SDKs wrapped groups in [brackets]

# --------------------------------------------------------------------------------------------------------
# Keys server HTTP API (keys-server lib.rs, handlers/mod.rs, error.rs; identity-keys 2.1.0)

KEYS_HTTP_PATH_IDENTITY: Final = "/identity"
KEYS_HTTP_PATH_HEALTH: Final = "/health"
KEYS_QUERY_PUBLIC_KEY: Final = "publicKey"  # GET /identity?publicKey=z6Mk… (multibase, no did:key: prefix)
KEYS_JWT_SUB_IDENTITY: Final = "identity_keys"  # identity-keys adds sub to the unregister idAuth
KEYS_NOT_FOUND_ENTITY: Final = "Identity key"  # the reference answers 404 "<entity> not found"


class KeysErrorName(StrEnum):
    """``error.name`` of a keys server FAILURE envelope (keys-server error.rs; ``conflict`` is wcnotify's)."""

    VALIDATION = "validation"
    JWT_VERIFICATION = "jwt_verification"
    DID = "did"
    CACAO = "cacao"
    NOT_FOUND = f"{KEYS_NOT_FOUND_ENTITY} not found"
    CONFLICT = "conflict"  # wcnotify: the identity key is registered to another account (reference: no-op)
    INTERNAL = "unknown_error"


# wcnotify keys server choices (no public source pins these)
KEYS_DEFAULT_PORT: Final = 8081  # the relay defaults to 8080; both can run side by side
KEYS_DEFAULT_DATABASE_URL: Final = "sqlite:///./wcnotify-keys.db"
KEYS_MAX_BODY_BYTES: Final = 64 * 1024  # a CACAO is ~1 KiB; larger bodies are refused with 413 unread
KEYS_HTTP_TIMEOUT: Final = 10.0  # client side: seconds per keys server request
KEYS_UNREGISTER_TTL: Final = DAY  # lifetime of the idAuth a Python wallet signs (identity-keys: a day)
# notify server side: verified identities are cached for minutes (the reference: a week, so an
# unregistered key kept working for up to a week); lookups that fail are not cached at all
IDENTITY_CACHE_TTL: Final = 5 * MINUTE
IDENTITY_CACHE_MAX_ENTRIES: Final = 10_000

# --------------------------------------------------------------------------------------------------------
# Webhooks to dapps (wcnotify; docs/webhooks.md). The reference has none: every name here is ours.


class WebhookEvent(StrEnum):
    """What a dapp webhook can be told, named from the dapp's side."""

    SUBSCRIBED = "subscribed"  # a new subscription (a re-subscribe is `updated` when its types changed)
    UPDATED = "updated"  # the subscription's notification types changed
    UNSUBSCRIBED = "unsubscribed"  # the wallet deleted the subscription


WEBHOOK_EVENTS: Final[tuple[WebhookEvent, ...]] = tuple(WebhookEvent)
WEBHOOK_HEADER_SIGNATURE: Final = "X-Wcnotify-Signature"  # t=<unix seconds>,v1=<hex HMAC-SHA256>
WEBHOOK_HEADER_EVENT: Final = "X-Wcnotify-Event"  # the event name, as in the body
WEBHOOK_HEADER_DELIVERY: Final = "X-Wcnotify-Delivery"  # the outbox row id: same on every retry, rising in order
WEBHOOK_SIGNATURE_SCHEME: Final = "v1"  # HMAC-SHA256 over f"{t}.{raw body}" keyed by the webhook secret
WEBHOOK_SIGNATURE_TOLERANCE: Final = 5 * MINUTE  # a receiver refuses t further than this from its clock
WEBHOOK_SECRET_PREFIX: Final = "whsec_"  # lets secret scanners spot a leaked one
WEBHOOK_URL_MAX: Final = 2048
WEBHOOK_MAX_PER_PROJECT: Final = 10
WEBHOOK_HTTP_TIMEOUT: Final = 10.0  # seconds for a whole POST (connect to response headers) before it failed
WEBHOOK_RETRY_BASE: Final = 1.0  # seconds before the first retry, doubled after each failure
WEBHOOK_RETRY_MAX: Final = 10 * MINUTE  # the longest wait between two attempts
WEBHOOK_EVENT_MAX_AGE: Final = 3 * DAY  # a pending event this old is dropped when its next attempt fails
WEBHOOK_DELIVERED_KEEP: Final = DAY  # delivered outbox rows are purged after this
WEBHOOK_CLAIM_LEASE: Final = 60.0  # seconds a replica holds a webhook's queue (> WEBHOOK_HTTP_TIMEOUT)
WEBHOOK_CONCURRENCY: Final = 8  # webhooks delivered at once by one server process
WEBHOOK_POLL_INTERVAL: Final = 1.0  # seconds between looks at the outbox (other replicas' events, retries)
WEBHOOK_PAGE: Final = 50  # pending events read per query while a queue is being drained
