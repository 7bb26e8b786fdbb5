"""A broadcast delivered a part of its audience at a time (``notify/broadcasts.py``), on SQLite and PostgreSQL:

* the request writes the audience's parts, not a delivery row per recipient, and the status and ``/metrics``
  count the recipients left, exactly, through a resend, a recipient who drops the type, a withdrawal and the
  give-up age;
* with real delivery, across parts, every recipient gets the notification once, including those a ``/notify``
  under the same ``notification_id`` reached first, under a ``msg.id`` derived from (notification, subscriber).

Subscribers are written straight into the database (``add_subscribers``), as in the delivery tests.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from sqlalchemy import delete, select

from wcnotify.notify.broadcasts import delivery_id
from wcnotify.notify.delivery import DeliveryConfig
from wcnotify.storage import create_engine
from wcnotify.storage.tables import (
    broadcast_parts,
    notifications,
    subscriber_notifications,
    subscriber_scopes,
    subscribers,
)

from .notify_stack import Dapp, refused, running_stack
from .test_notify_delivery import Fleet, add_subscribers, broadcast
from .test_notify_limits import sample, scrape


async def stored(database_url: str, notification_id: str) -> tuple[list[Any], list[Any]]:
    """The delivery rows and the broadcast parts of the notification ``notification_id``."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            mine = select(notifications.c.id).where(notifications.c.notification_id == notification_id)
            sn, bp = subscriber_notifications, broadcast_parts
            rows = (await conn.execute(
                select(sn.c.id, sn.c.notification, sn.c.subscriber, sn.c.status, subscribers.c.topic)
                .join(subscribers, subscribers.c.id == sn.c.subscriber)
                .where(sn.c.notification.in_(mine.scalar_subquery()))
            )).all()
            parts = (await conn.execute(
                select(bp.c.status, bp.c.pending).where(bp.c.notification.in_(mine.scalar_subquery()))
            )).all()
    finally:
        await engine.dispose()
    return list(rows), list(parts)


async def accounts(database_url: str, dapp_topics: list[str]) -> dict[str, str]:
    """topic -> account of these subscribers."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                select(subscribers.c.topic, subscribers.c.account).where(subscribers.c.topic.in_(dapp_topics))
            )
            return {r.topic: r.account for r in found}
    finally:
        await engine.dispose()


async def drop_type(database_url: str, dapp: Dapp, topic: str, type_name: str) -> None:
    """The subscriber of ``topic`` no longer has ``type_name`` in scope (as after a wc_notifyUpdate)."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            sid = (await conn.execute(select(subscribers.c.id).where(subscribers.c.topic == topic))).scalar_one()
            await conn.execute(delete(subscriber_scopes).where(
                subscriber_scopes.c.subscriber == sid, subscriber_scopes.c.type_id == dapp.types[type_name]))
    finally:
        await engine.dispose()


async def test_the_request_writes_parts_and_the_status_counts_what_is_left(database_url: str) -> None:
    # no delivery workers: what the request wrote stays as it is
    async with running_stack(database_url, delivery=DeliveryConfig(workers=0, batch=2)) as stack:
        dapp = await stack.create_dapp()
        keys = await add_subscribers(database_url, dapp, "alerts", 5)
        await add_subscribers(database_url, dapp, "news", 2)  # subscribers of another type: not in the audience
        assert await broadcast(stack.http, stack.notify_url, dapp, "alerts", "b") == 5
        rows, parts = await stored(database_url, "b")
        assert rows == []  # not one delivery row: the parts, of the batch size, stand for the audience
        assert sorted(parts) == [("open", 1), ("open", 2), ("open", 2)]
        status = await stack.status(dapp, "b")
        assert (status["queued"], status["published"], status["total"]) == (5, 0, 5)
        assert sample(await scrape(stack), "wcnotify_notify_queue_depth", status="queued") == 5

        # a resend before anything went out: new parts replace the open ones, nobody counts twice
        assert await broadcast(stack.http, stack.notify_url, dapp, "alerts", "b") == 5
        _, parts = await stored(database_url, "b")
        assert sorted(parts) == [("done", 0)] * 3 + [("open", 1), ("open", 2), ("open", 2)]
        assert (await stack.status(dapp, "b"))["queued"] == 5
        assert sample(await scrape(stack), "wcnotify_notify_queue_depth", status="queued") == 5

        # a recipient who drops the type before its page is read is no recipient any more
        await drop_type(database_url, dapp, sorted(keys)[0], "alerts")
        status = await stack.status(dapp, "b")
        assert (status["queued"], status["total"]) == (4, 4)

        # withdrawn: the four left, once, and the status keeps saying so
        r = await stack.http.delete(f"{stack.notify_url}/v1/{dapp.project_id}/notifications/b", headers=dapp.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["withdrawn_now"], body["withdrawn"], body["queued"], body["total"]) == (4, 4, 0, 4)
        rows, parts = await stored(database_url, "b")
        assert rows == [] and sorted(p.status for p in parts) == ["done"] * 3 + ["withdrawn"] * 3
        assert sum(p.pending for p in parts) == 4
        assert (await stack.status(dapp, "b"))["withdrawn"] == 4
        assert sample(await scrape(stack), "wcnotify_notify_queue_depth", status="queued") == 0
        refused(await stack.http.post(
            f"{stack.notify_url}/v1/{dapp.project_id}/notify/broadcast", headers=dapp.headers,
            json={"notification_id": "b", "notification": {"type": dapp.types["alerts"], "title": "t", "body": "b"}},
        ), 409, "withdrawn")


async def test_recipients_left_past_the_give_up_age_fail(database_url: str) -> None:
    async with running_stack(database_url, delivery=DeliveryConfig(workers=0, give_up=0.05)) as stack:
        dapp = await stack.create_dapp()
        await add_subscribers(database_url, dapp, "alerts", 3)
        assert await broadcast(stack.http, stack.notify_url, dapp, "alerts", "late") == 3
        await asyncio.sleep(0.1)
        deliverer = stack.notify.service.deliverer
        assert await deliverer.sweep() == (0, 3)
        status = await stack.status(dapp, "late")
        assert (status["failed"], status["queued"], status["total"]) == (3, 0, 3)
        assert deliverer.failed == 3
        assert await deliverer.sweep() == (0, 0)  # counted once


async def test_each_recipient_gets_it_once_across_parts_under_a_derived_id(database_url: str) -> None:
    async with running_stack(database_url, delivery=DeliveryConfig(batch=3, poll=0.05)) as stack:
        dapp = await stack.create_dapp()
        keys = await add_subscribers(database_url, dapp, "alerts", 10)
        fleet = Fleet(keys)
        client = await fleet.listen(stack.relay.ws_url)
        try:
            # two of them get it first from a /notify under the same notification_id
            first = sorted(keys)[:2]
            by_topic = await accounts(database_url, first)
            sent = await stack.send(dapp, [by_topic[t] for t in first], "alerts", notification_id="b")
            assert len(sent["sent"]) == 2
            deadline = time.monotonic() + 10
            while len(fleet.received) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert set(fleet.received) == set(first)

            assert await broadcast(stack.http, stack.notify_url, dapp, "alerts", "b") == 8
            await fleet.all_received()
            status = await stack.delivered(dapp, "b", 10)
            assert (status["published"], status["queued"], status["total"]) == (10, 0, 10)
            await asyncio.sleep(0.3)  # a second delivery would have arrived by now
            assert all(len(ids) == 1 for ids in fleet.received.values()), fleet.received

            rows, parts = await stored(database_url, "b")
            assert len(rows) == 10 and {r.status for r in rows} == {"published"}
            assert sorted(parts) == [("done", 0)] * 3  # ceil(8 / 3) parts, each finished
            for r in rows:
                assert fleet.received[r.topic] == [r.id]  # the wallet got the row's id
                assert uuid.UUID(r.id).version == 4 and str(uuid.UUID(r.id)) == r.id
                if r.topic not in first:  # a broadcast page's row: its id comes from (notification, subscriber)
                    assert r.id == delivery_id(r.notification, r.subscriber)
            assert len({r.id for r in rows}) == 10
        finally:
            await client.close()
