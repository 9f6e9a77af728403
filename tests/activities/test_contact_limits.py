"""Frequency caps, priority holds and duplicate content in the store, on SQLite and PostgreSQL.

Every rule is decided in the transaction that claims the message, under a lock on the
customer's row: claims racing through separate stores (separate connection pools, as separate
worker processes have) for one window's last slot cannot both pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from durable_journeys.activities import CustomerProfile, MessageStatus, Store
from durable_journeys.activities.store import Cap, ContactLimits, ContactRefused
from durable_journeys.providers import DeliveryReceipt, ReceiptStatus
from tests.helpers import postgres_stores

T0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Store]]:
    """Three stores on one database, as three worker processes would have."""
    if request.param == "postgres":
        async with postgres_stores(3) as made:
            await made[0].migrate()
            yield made
        return
    made = [Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}") for _ in range(3)]
    await made[0].migrate()
    try:
        yield made
    finally:
        for s in made:
            await s.close()


async def add_customer(store: Store, customer_id: str = "c-1") -> str:
    await store.upsert_customer(CustomerProfile(customer_id=customer_id, phone="010-1234-5678"))
    return customer_id


def claim(
    workflow: str,
    *,
    at: datetime = T0,
    channel: str = "sms",
    step: str = "promo",
    purpose: str = "advertising",
    customer_id: str = "c-1",
) -> dict[str, Any]:
    return {
        "idempotency_key": f"{workflow}:{step}:{channel}",
        "workflow_id": workflow,
        "step": step,
        "channel": channel,
        "customer_id": customer_id,
        "provider": "sandbox",
        "purpose": purpose,
        "template": "t",
        "journey_time": at,
    }


def limits(ads: int = 2, per_channel: int = 0, channel: str = "sms", **extra: Any) -> ContactLimits:
    caps = [Cap(limit=ads, window=WEEK), Cap(limit=per_channel, window=timedelta(days=1), channel=channel)]
    return ContactLimits(advertising=True, caps=caps, **extra)


async def refusal(store: Store, lim: ContactLimits, fields: dict[str, Any]) -> ContactRefused | None:
    try:
        await store.claim_message(limits=lim, **fields)
    except ContactRefused as refused:
        return refused
    return None


@pytest.mark.parametrize("racers", [2, 6])
async def test_claims_racing_for_the_last_slot_pass_once(stores: list[Store], racers: int) -> None:
    for round_ in range(4):  # a few rounds: a lost race must not depend on luck
        customer = await add_customer(stores[0], f"c-{round_}")
        await stores[0].claim_message(limits=limits(), **claim(f"earlier-{round_}", customer_id=customer))
        outcomes = await asyncio.gather(
            *(
                refusal(stores[i % len(stores)], limits(), claim(f"racer-{round_}-{i}", customer_id=customer))
                for i in range(racers)
            )
        )
        passed = [o for o in outcomes if o is None]
        assert len(passed) == 1, f"round {round_}: {len(passed)} claims took the last slot"
        assert {o.reason for o in outcomes if o is not None} == {"frequency_cap"}
        counted = [m for m in await stores[0].messages(customer_id=customer)]
        assert len(counted) == 2


async def test_informational_messages_are_never_capped_and_never_counted(stores: list[Store]) -> None:
    store = stores[0]
    await add_customer(store)
    info = ContactLimits(advertising=False, caps=limits().caps)
    for i in range(5):
        await store.claim_message(limits=info, **claim(f"notice-{i}", purpose="informational"))
    await store.claim_message(limits=limits(), **claim("ad-1"))
    await store.claim_message(limits=limits(), **claim("ad-2", channel="push"))
    refused = await refusal(store, limits(), claim("ad-3", channel="email"))
    assert refused is not None and refused.reason == "frequency_cap"


async def test_a_full_window_frees_when_its_oldest_ad_leaves_it(stores: list[Store]) -> None:
    store = stores[0]
    await add_customer(store)
    await store.claim_message(limits=limits(), **claim("a", at=T0))
    await store.claim_message(limits=limits(), **claim("b", at=T0 + timedelta(days=2), channel="push"))
    refused = await refusal(store, limits(), claim("c", at=T0 + timedelta(days=3), channel="email"))
    assert refused is not None and refused.not_before == T0 + WEEK + timedelta(seconds=1)
    assert await refusal(store, limits(), claim("c", at=T0 + WEEK, channel="email")) is not None
    assert await refusal(store, limits(), claim("c", at=T0 + WEEK + timedelta(seconds=1), channel="email")) is None


async def test_the_per_channel_cap_counts_one_channel(stores: list[Store]) -> None:
    store = stores[0]
    await add_customer(store)
    lim = limits(ads=10, per_channel=1)
    await store.claim_message(limits=lim, **claim("a", at=T0))
    refused = await refusal(store, lim, claim("b", at=T0 + timedelta(hours=3)))
    assert refused is not None and refused.not_before == T0 + timedelta(days=1, seconds=1)
    push = limits(ads=10, per_channel=1, channel="push")
    assert await refusal(store, push, claim("b", at=T0 + timedelta(hours=3), channel="push")) is None


async def test_a_step_counts_once_and_sends_that_did_not_go_out_do_not_count(stores: list[Store]) -> None:
    store = stores[0]
    await add_customer(store)
    await store.claim_message(limits=limits(ads=1), **claim("a", channel="push"))
    # The same step's next channel (its fallback) is no second ad.
    assert await refusal(store, limits(ads=1), claim("a", channel="sms")) is None
    # A rejected message and one whose receipt failed never reached the customer.
    await store.finish_message("a:promo:push", MessageStatus.REJECTED)
    await store.finish_message("a:promo:sms", MessageStatus.ACCEPTED)
    await store.record_receipt(
        DeliveryReceipt(provider="sandbox", idempotency_key="a:promo:sms", status=ReceiptStatus.FAILED)
    )
    assert await refusal(store, limits(ads=1), claim("b", channel="email")) is None
    refused = await refusal(store, limits(ads=1), claim("c", channel="push"))
    assert refused is not None and refused.reason == "frequency_cap"


async def test_a_retried_claim_is_never_refused(stores: list[Store]) -> None:
    store = stores[0]
    await add_customer(store)
    await store.claim_message(limits=limits(ads=1), **claim("a"))
    again, created = await store.claim_message(limits=limits(ads=1), **claim("a"))  # the activity's retry
    assert (created, again.attempts) == (False, 2)


async def test_a_held_lower_priority_ad_loses_its_slot_to_a_higher_one(stores: list[Store]) -> None:
    store = stores[0]
    await add_customer(store)
    low = limits(ads=1, priority_grace=timedelta(minutes=10))
    held = await refusal(store, low, claim("low"))
    assert held is not None and (held.reason, held.not_before) == ("priority_grace", T0 + timedelta(minutes=10))
    # Asked again within the grace, the hold stands (its end does not move).
    early = await refusal(store, low, claim("low", at=T0 + timedelta(minutes=4)))
    assert early is not None and early.not_before == T0 + timedelta(minutes=10)
    assert await refusal(store, limits(ads=1), claim("high", at=T0 + timedelta(minutes=5), channel="push")) is None
    late = await refusal(store, low, claim("low", at=T0 + timedelta(minutes=10)))
    assert late is not None and late.reason == "frequency_cap"


async def test_a_lower_priority_ad_takes_the_slot_after_its_grace(stores: list[Store]) -> None:
    store = stores[0]
    await add_customer(store)
    low = limits(ads=1, priority_grace=timedelta(minutes=10))
    assert await refusal(store, low, claim("low")) is not None
    assert await refusal(store, low, claim("low", at=T0 + timedelta(minutes=10))) is None
    # Not the last slot: no grace.
    assert await refusal(store, limits(ads=3, priority_grace=timedelta(minutes=10)), claim("x", channel="push")) is None


@pytest.mark.parametrize("purpose", ["advertising", "informational"])
async def test_the_same_content_to_the_same_customer_goes_out_once_per_window(
    stores: list[Store], purpose: str
) -> None:
    store = stores[0]
    await add_customer(store)
    dup = ContactLimits(advertising=False, content_key="k1", duplicate_window=WEEK)
    await store.claim_message(limits=dup, **claim("a", purpose=purpose))
    # The same step on another channel is its fallback, not a duplicate.
    assert await refusal(store, dup, claim("a", channel="push", purpose=purpose)) is None
    refused = await refusal(store, dup, claim("b", channel="email", at=T0 + timedelta(days=1), purpose=purpose))
    assert refused is not None and refused.reason == "duplicate_content"
    other = dup.model_copy(update={"content_key": "k2"})
    assert await refusal(store, other, claim("c", at=T0 + timedelta(days=1), purpose=purpose)) is None
    assert await refusal(store, dup, claim("d", at=T0 + WEEK + timedelta(seconds=1), purpose=purpose)) is None
