"""The push proposal flow end to end (protocol.md §7): the dapp SDK's ProposalClient proposes over a pairing,
the wallet SDK answers. Real relay, keys server and notify server, SQLite and PostgreSQL. Approve (the dapp then
follows the wallet's update and delete), reject, already subscribed, a replayed proposal, and the pushProposal
Sync store carrying a proposal and its answer to the account's other device."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wcnotify.dapp.proposal import ProposalClient
from wcnotify.protocol.pairing import parse as parse_pairing
from wcnotify.protocol.proposal import AlreadySubscribed, ProposalRejected, SubscriptionDeleted, SubscriptionUpdated
from wcnotify.spec import ProposalStatus
from wcnotify.wallet import NotificationReceived, ProposalReceived, ProposalResolved, WalletError

from .notify_stack import Dapp, Stack, running_stack
from .wallet_devices import StackResolver, device, new_account, next_of


def metadata(dapp: Dapp) -> dict[str, object]:
    return {"name": "Proposing dapp", "description": "asks first", "url": f"https://{dapp.domain}", "icons": []}


@contextlib.asynccontextmanager
async def proposer(stack: Stack) -> AsyncIterator[ProposalClient]:
    async with ProposalClient(stack.relay.ws_url) as client:
        yield client


async def test_approve_then_the_dapp_follows_updates_and_the_delete(database_url: str, tmp_path: Path) -> None:
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with proposer(stack) as pc, device(stack, tmp_path / "w1.db", resolver) as w1, \
                device(stack, tmp_path / "w2.db", resolver) as w2:
            for w in (w1, w2):
                await w.register_with_key(account, eth.key, dapp.domain)
                await w.sync.enable_with_key(account, eth.key)
            uri = await pc.create_pairing()
            await w1.proposals.pair(uri)
            with w1.events() as e1, w2.events() as e2:
                proposing = asyncio.create_task(
                    pc.propose(parse_pairing(uri).topic, account, metadata(dapp), ["alerts"], timeout=20))
                received = await next_of(e1, ProposalReceived)
                assert received.source == "pairing" and received.record.proposal.scope == ("alerts",)
                assert [r.key for r in await w1.proposals.pending(account)] == [received.record.key]
                shared = await next_of(e2, ProposalReceived)  # the other device sees it through Sync
                assert shared.source == "sync" and shared.record.key == received.record.key

                sub = await w1.proposals.approve(received.record.key)
                approved = await asyncio.wait_for(proposing, 10)
                assert approved.topic == sub.topic and approved.sym_key == sub.sym_key
                assert sub.scope == (dapp.types["alerts"],)
                resolved = await next_of(e2, ProposalResolved)
                assert resolved.record.status == ProposalStatus.APPROVED
                assert resolved.record.subscription_topic == sub.topic
            assert await w1.proposals.pending(account) == []
            with pytest.raises(WalletError, match="already approved"):
                await w2.proposals.approve(received.record.key)

            with w1.events() as e1:  # the approved subscription is an ordinary one
                await stack.send(dapp, [account], "alerts", title="approved")
                assert (await next_of(e1, NotificationReceived)).notification.title == "approved"

            events = pc.subscription_events(approved)
            await w1.update(dapp.domain, ["alerts", "news"])
            change = await asyncio.wait_for(anext(events), 10)
            assert isinstance(change, SubscriptionUpdated) and set(change.scope) == set(dapp.types.values())
            await w1.delete(dapp.domain)
            change = await asyncio.wait_for(anext(events), 10)
            assert isinstance(change, SubscriptionDeleted)


async def test_reject_and_already_subscribed(database_url: str, tmp_path: Path) -> None:
    async with running_stack(database_url) as stack:
        resolver = StackResolver(stack)
        dapp = resolver.add(await stack.create_dapp())
        eth, account = new_account()
        async with proposer(stack) as pc, device(stack, tmp_path / "w.db", resolver) as w:
            await w.register_with_key(account, eth.key, dapp.domain)
            uri = await pc.create_pairing()
            topic = parse_pairing(uri).topic
            await w.proposals.pair(uri)
            with w.events() as events:
                proposing = asyncio.create_task(pc.propose(topic, account, metadata(dapp), ["news"], timeout=20))
                received = await next_of(events, ProposalReceived)
                await w.proposals.reject(received.record.key, "not today")
                with pytest.raises(ProposalRejected) as rejected:
                    await asyncio.wait_for(proposing, 10)
                assert rejected.value.reason == "not today" and rejected.value.code == 5000
                assert (await next_of(events, ProposalResolved)).record.status == ProposalStatus.REJECTED
            assert await w.subscriptions(account) == []
            with pytest.raises(WalletError, match="already rejected"):
                await w.proposals.reject(received.record.key)

            await w.subscribe(account, dapp.domain)
            with w.events() as events:
                with pytest.raises(AlreadySubscribed) as already:
                    await pc.propose(topic, account, metadata(dapp), ["news"], timeout=20)
                assert already.value.code == 6001
                answered = await next_of(events, ProposalResolved)  # answered by itself; nothing to ask the user
                assert answered.record.status == ProposalStatus.REJECTED
            assert await w.proposals.pending() == []


async def test_an_expired_pairing_is_refused(database_url: str, tmp_path: Path) -> None:
    async with running_stack(database_url) as stack, proposer(stack) as pc, device(stack, tmp_path / "w.db") as w:
        uri = await pc.create_pairing(ttl=-10)
        with pytest.raises(WalletError, match="expired"):
            await w.proposals.pair(uri)
        with pytest.raises(WalletError, match="not a pairing URI"):
            await w.proposals.pair("wc:nope")
