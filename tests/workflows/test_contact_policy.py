"""Frequency caps, journey priority and duplicate content, across journeys, in journey time.

Two small ad journeys (``tests/workflows/promo.py``) stand for any journeys a shop runs: the
rules live in the send path, so the journeys have no code of their own for them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel, CustomerProfile, Purpose, Template, TemplateRegistry, default_templates
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.stack import Stack
from durable_journeys.starter.testing import journey_kit
from durable_journeys.workflows import JourneyResult, Outcome, TimelineEntry
from tests import factories
from tests.workflows.promo import FlashSaleJourney, PromoInput, PromoJourney

JOURNEYS = [PromoJourney, FlashSaleJourney]


def promo_templates() -> TemplateRegistry:
    """The reference templates and a sale that can go out on every channel used here."""
    registry = default_templates()
    text = "#{customer_name}님, 이번 주 특가를 확인하세요 #{sale_url}"
    channels = (Channel.SMS, Channel.PUSH, Channel.BRAND_MESSAGE)
    registry.register(Template(code="promo_sale", purpose=Purpose.ADVERTISING, texts=dict.fromkeys(channels, text)))
    return registry


@asynccontextmanager
async def policy_stack(env: WorkflowEnvironment, sqlite_url: str, **settings: Any) -> AsyncIterator[Stack]:
    database = Path(sqlite_url.removeprefix("sqlite+aiosqlite:///"))
    async with journey_kit(env, database, settings=Settings(**settings), templates=promo_templates()) as kit:
        async with kit.worker(*JOURNEYS):
            yield kit.stack


async def ad_customer(s: Stack) -> CustomerProfile:
    """A customer who consented to ads on every channel used here, at night too."""
    consented = factories.clock - timedelta(days=30)
    c = factories.customer(
        push_tokens=["device-token-1"],
        marketing_consent={ch: consented for ch in (Channel.SMS, Channel.PUSH, Channel.BRAND_MESSAGE)},
    )
    await s.store.upsert_customer(c)
    return c


async def start(s: Stack, journey: type[PromoJourney | FlashSaleJourney], **fields: Any) -> WorkflowHandle[Any, Any]:
    return await s.journeys.client.start_workflow(
        journey.run,
        PromoInput.model_validate(fields),
        id=f"{journey.journey}:{uuid.uuid4().hex[:8]}",
        task_queue=s.task_queue,
    )


async def finish(s: Stack, handle: WorkflowHandle[Any, Any]) -> tuple[JourneyResult, list[TimelineEntry]]:
    result = JourneyResult.model_validate(await handle.result())
    return result, await s.journeys.timeline(handle.id)


def steps(timeline: list[TimelineEntry], outcome: Outcome) -> list[tuple[str, Channel | None, str | None]]:
    return [(e.step, e.channel, e.detail) for e in timeline if e.outcome is outcome]


def sale(url: str) -> dict[str, str]:
    return {"sale_url": url}


async def ad(
    s: Stack, journey: type[PromoJourney | FlashSaleJourney], c: CustomerProfile, channels: str, url: str, **fields: Any
) -> WorkflowHandle[Any, Any]:
    """Start ``journey``'s sale for ``c`` on ``channels`` (comma-separated), its content keyed by ``url``."""
    return await start(
        s, journey, customer_id=c.customer_id, channels=channels.split(","), variables=sale(url), **fields
    )


async def test_an_ad_over_the_weekly_cap_is_skipped_and_informational_messages_are_not_counted(
    env: WorkflowEnvironment, sqlite_url: str
) -> None:
    async with policy_stack(env, sqlite_url) as s:  # the defaults: 2 ads a week, 1 a day per channel
        c = await ad_customer(s)
        first = await ad(s, PromoJourney, c, "sms", "/a")
        notice = await start(
            s,
            FlashSaleJourney,
            customer_id=c.customer_id,
            channels=["sms"],
            template="review_request",
            variables={"item_name": "양말", "review_url": "/r"},
            purpose="informational",
            after=timedelta(minutes=30),
        )
        second = await ad(s, FlashSaleJourney, c, "push", "/b", after=timedelta(hours=1))
        third = await start(
            s,
            PromoJourney,
            customer_id=c.customer_id,
            channels=["brand_message"],
            template="cart_coupon",
            variables={"item_names": "양말", "cart_total": "5000", "coupon_code": "C1", "cart_url": "/c"},
            after=timedelta(days=3),
        )
        results = [await finish(s, h) for h in (first, notice, second, third)]
    assert [r.outcome for r, _ in results] == ["delivered", "delivered", "delivered", "not_delivered"]
    _, timeline = results[3]
    assert steps(timeline, Outcome.SKIPPED) == [("promo", Channel.BRAND_MESSAGE, "frequency_cap")]
    assert [m["channel"] for m in s.sandbox.messages.values()] == ["sms", "sms", "push"]


async def test_a_capped_ad_set_to_defer_goes_out_when_the_window_frees(
    env: WorkflowEnvironment, sqlite_url: str
) -> None:
    async with policy_stack(env, sqlite_url, ad_cap=1) as s:
        c = await ad_customer(s)
        first = await ad(s, PromoJourney, c, "sms", "/a")
        deferred = await ad(
            s,
            FlashSaleJourney,
            c,
            "push",
            "/b",
            after=timedelta(days=2),
            on_cap="defer",
            defer_within=timedelta(days=6),
        )
        _, first_timeline = await finish(s, first)
        result, timeline = await finish(s, deferred)
    sent_at = steps(first_timeline, Outcome.SENT)
    assert sent_at and result.outcome == "delivered"
    (deferral,) = [e for e in timeline if e.outcome is Outcome.DEFERRED]
    assert deferral.detail is not None and deferral.detail.startswith("frequency_cap until ")
    assert timedelta(days=2) <= deferral.elapsed < timedelta(days=2, minutes=1)
    (delivered,) = [e for e in timeline if e.outcome is Outcome.DELIVERED]
    # The first ad leaves the 7-day window one second after it is 7 days old: day 7 of the first journey.
    first_sent = next(e.at for e in first_timeline if e.outcome is Outcome.SENT)
    assert first_sent + timedelta(days=7) < delivered.at <= first_sent + timedelta(days=7, minutes=1)
    assert delivered.channel is Channel.PUSH


async def test_a_deferral_past_the_steps_latest_time_is_a_skip(env: WorkflowEnvironment, sqlite_url: str) -> None:
    async with policy_stack(env, sqlite_url, ad_cap=1) as s:
        c = await ad_customer(s)
        first = await ad(s, PromoJourney, c, "sms", "/a")
        # The window frees on day 7: too late for a sale that is only worth sending by day 5.
        late = await ad(
            s,
            FlashSaleJourney,
            c,
            "push",
            "/b",
            after=timedelta(days=2),
            on_cap="defer",
            defer_within=timedelta(days=3),
        )
        await finish(s, first)
        result, timeline = await finish(s, late)
    assert result.outcome == "not_delivered"
    assert steps(timeline, Outcome.SKIPPED) == [("promo", Channel.PUSH, "frequency_cap")]
    assert not steps(timeline, Outcome.DEFERRED)
    assert [m["channel"] for m in s.sandbox.messages.values()] == ["sms"]


async def test_the_per_channel_cap_moves_the_step_to_its_next_channel(
    env: WorkflowEnvironment, sqlite_url: str
) -> None:
    async with policy_stack(env, sqlite_url) as s:  # 1 ad a day per channel
        c = await ad_customer(s)
        first = await ad(s, PromoJourney, c, "push", "/a")
        second = await ad(s, FlashSaleJourney, c, "push,sms", "/b", after=timedelta(hours=2))
        await finish(s, first)
        result, timeline = await finish(s, second)
    assert result.outcome == "delivered"
    assert steps(timeline, Outcome.SKIPPED) == [("promo", Channel.PUSH, "channel_frequency_cap")]
    assert [e.channel for e in timeline if e.outcome is Outcome.DELIVERED] == [Channel.SMS]


async def test_a_higher_priority_ad_takes_the_last_slot_even_when_it_comes_second(
    env: WorkflowEnvironment, sqlite_url: str
) -> None:
    async with policy_stack(env, sqlite_url, ad_cap=1, journey_priority=["flash-sale", "promo"]) as s:
        c = await ad_customer(s)
        low = await ad(s, PromoJourney, c, "sms", "/a")
        high = await ad(s, FlashSaleJourney, c, "push", "/b", after=timedelta(minutes=3))
        (high_result, high_timeline), (low_result, low_timeline) = await finish(s, high), await finish(s, low)
    assert high_result.outcome == "delivered" and low_result.outcome == "not_delivered"
    assert not steps(high_timeline, Outcome.DEFERRED)  # the top journey never waits
    (grace,) = [e for e in low_timeline if e.outcome is Outcome.DEFERRED]
    assert (
        grace.detail is not None
        and grace.detail.startswith("priority_grace until ")
        and grace.elapsed < timedelta(minutes=1)
    )
    (skip,) = [e for e in low_timeline if e.outcome is Outcome.SKIPPED]
    assert skip.detail == "frequency_cap" and timedelta(minutes=10) <= skip.elapsed < timedelta(minutes=11)
    assert [m["channel"] for m in s.sandbox.messages.values()] == ["push"]


async def test_a_lower_priority_ad_goes_out_after_the_grace_when_nothing_outranks_it(
    env: WorkflowEnvironment, sqlite_url: str
) -> None:
    async with policy_stack(env, sqlite_url, journey_priority=["flash-sale", "promo"], priority_grace="PT5M") as s:
        c = await ad_customer(s)
        low = await ad(s, PromoJourney, c, "sms", "/a")
        result, timeline = await finish(s, low)
    assert result.outcome == "delivered"
    (delivered,) = [e for e in timeline if e.outcome is Outcome.DELIVERED]
    assert delivered.elapsed >= timedelta(minutes=5)


async def test_the_same_content_from_two_journeys_goes_out_once(env: WorkflowEnvironment, sqlite_url: str) -> None:
    async with policy_stack(env, sqlite_url, ad_cap=0, channel_ad_cap=0) as s:  # caps off: only duplicates
        c = await ad_customer(s)
        first = await ad(s, PromoJourney, c, "sms", "/same")
        again = await ad(s, FlashSaleJourney, c, "push,sms", "/same", after=timedelta(days=1))
        other = await ad(s, FlashSaleJourney, c, "push", "/other", after=timedelta(days=2))
        later = await ad(s, FlashSaleJourney, c, "push", "/same", after=timedelta(days=8))
        results = [await finish(s, h) for h in (first, again, other, later)]
    assert [r.outcome for r, _ in results] == ["delivered", "not_delivered", "delivered", "delivered"]
    # The same content reached the customer: a rule about the customer, so SMS is not tried.
    assert steps(results[1][1], Outcome.SKIPPED) == [("promo", Channel.PUSH, "duplicate_content")]
    assert [m["channel"] for m in s.sandbox.messages.values()] == ["sms", "push", "push"]
