"""The relay: WebSocket JSON-RPC pub/sub with a mailbox (see ``shared/protocol.md`` §2).

``core`` is the protocol engine (no sockets), ``mailbox``/``sql_mailbox`` keep messages until their TTL,
``router`` fans messages out to live subscribers, ``server`` is the ASGI adapter and ``client`` the Python SDK.
"""
