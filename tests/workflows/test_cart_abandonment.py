"""The cart-abandonment journey on the time-skipping server: exact messages at journey times."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import JourneyResult, Outcome, TimelineEntry, cart_id
from tests import factories
from tests.factories import customer

CART = {"items": [{"name": "무선 이어폰", "unit_price": 39000}, {"name": "케이스", "unit_price": 9000}]}


# A browser's web push subscription (PushSubscription.toJSON()), the address of the web_push channel.
BROWSER = json.dumps(
    {"endpoint": "https://fcm.googleapis.com/fcm/send/abc", "keys": {"p256dh": "BNcRd-key", "auth": "tBHI-auth"}}
)


def shopper(*, app: bool = True, kakao: bool = True, **overrides: Any) -> Any:
    consented = factories.clock - timedelta(days=30)
    consent = {Channel.PUSH: consented, Channel.WEB_PUSH: consented, Channel.EMAIL: consented}
    if kakao:
        consent[Channel.BRAND_MESSAGE] = consented
    return customer(
        push_tokens=["device-token-1", BROWSER] if app else [],
        app_installed=app,
        marketing_consent=consent,
        **overrides,
    )


def sends(stack: Stack) -> list[tuple[str, str]]:
    return [(m["custom_fields"]["step"], m["channel"]) for m in stack.sandbox.messages.values()]


def only(timeline: list[TimelineEntry], step: str, outcome: Outcome) -> TimelineEntry:
    found = [e for e in timeline if e.step == step and e.outcome is outcome]
    assert len(found) == 1, (step, outcome, timeline)
    return found[0]


async def test_idle_hour_then_push_and_every_update_restarts_the_timer(env: WorkflowEnvironment, stack: Stack) -> None:
    c = shopper()
    async with stack.worker():
        await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
        await env.sleep(timedelta(minutes=50))
        assert sends(stack) == []
        await stack.journeys.cart_updated(c.customer_id, {"items": [{"name": "충전기", "unit_price": 15000}]})
        await env.sleep(timedelta(minutes=59))
        assert sends(stack) == []  # 1 h 49 min after the first update, 59 min after the last
        await env.sleep(timedelta(minutes=2))
        timeline = await stack.journeys.timeline(cart_id(c.customer_id))
    assert sends(stack) == [("cart_reminder", "push")]
    last_update = [e for e in timeline if e.step == "cart.updated"][-1]
    push = only(timeline, "cart_reminder", Outcome.SENT)
    assert abs(push.at - last_update.at - timedelta(hours=1)) < timedelta(seconds=5)
    body = next(iter(stack.sandbox.messages.values()))["body"]
    assert body.startswith("(광고)") and "충전기" in body and "이어폰" not in body


async def test_ignored_push_gets_brand_message_coupon_at_24h(env: WorkflowEnvironment, stack: Stack) -> None:
    c = shopper(kakao=True)
    async with stack.worker():
        handle = await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
        result: JourneyResult = await handle.result()
    assert result.outcome == "completed"
    assert sends(stack) == [("cart_reminder", "push"), ("cart_coupon", "brand_message")]
    push = only(result.timeline, "cart_reminder", Outcome.SENT)
    coupon = only(result.timeline, "cart_coupon", Outcome.SENT)
    assert abs(coupon.at - push.at - timedelta(hours=24)) < timedelta(seconds=5)
    assert "CART10" in list(stack.sandbox.messages.values())[1]["body"]


async def test_opened_push_means_no_coupon(env: WorkflowEnvironment, stack: Stack) -> None:
    c = shopper()
    async with stack.worker():
        handle = await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
        await env.sleep(timedelta(hours=3))
        assert await stack.journeys.emit(c.customer_id, {"type": "message.opened"}) == 1
        result: JourneyResult = await handle.result()
    assert result.outcome == "engaged"
    assert sends(stack) == [("cart_reminder", "push")]


@pytest.mark.parametrize(("kakao", "coupon_channel"), [(True, "brand_message"), (False, "email")])
async def test_no_app_goes_straight_to_the_coupon_at_24h(
    env: WorkflowEnvironment, stack: Stack, kakao: bool, coupon_channel: str
) -> None:
    c = shopper(app=False, kakao=kakao)
    async with stack.worker():
        handle = await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
        result: JourneyResult = await handle.result()
    assert sends(stack) == [("cart_coupon", coupon_channel)]
    updated = only(result.timeline, "cart.updated", Outcome.EVENT)
    coupon = only(result.timeline, "cart_coupon", Outcome.SENT)
    assert abs(coupon.at - updated.at - timedelta(hours=25)) < timedelta(seconds=5)  # idle 1 h + 24 h


@pytest.mark.parametrize("after", [timedelta(minutes=30), timedelta(hours=5)], ids=["30min", "5h"])
async def test_purchase_ends_the_journey_at_once(env: WorkflowEnvironment, stack: Stack, after: timedelta) -> None:
    c = shopper()
    async with stack.worker():
        handle = await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
        await env.sleep(after)
        assert await stack.journeys.purchase(c.customer_id, "o-1")
        result: JourneyResult = await handle.result()
        await env.sleep(timedelta(days=2))
    assert result.outcome == "exited:purchase"
    assert sends(stack) == ([] if after < timedelta(hours=1) else [("cart_reminder", "push")])


async def test_purchase_in_the_same_instant_as_the_24h_timer_sends_nothing(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    c = shopper()
    # No workflow cache: a stopped worker's sticky queue would hold the next task back.
    async with stack.worker(max_cached_workflows=0):
        handle = await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
        await env.sleep(timedelta(hours=2))
        push_at = only(await stack.journeys.timeline(handle.id), "cart_reminder", Outcome.SENT).at
    assert sends(stack) == [("cart_reminder", "push")]
    # No worker: the clock moves to just before the 24 h timer, then past it (the server stops
    # skipping while the timer's workflow task waits, so the last 2 s pass in real time); the
    # purchase lands on the same pending task, and one workflow task sees both.
    await env.sleep(push_at + timedelta(hours=24) - await env.get_current_time() - timedelta(seconds=1))
    await env.sleep(timedelta(seconds=2))
    await stack.journeys.purchase(c.customer_id, "o-1")
    async with stack.worker(max_cached_workflows=0):
        result: JourneyResult = await handle.result()
    assert result.outcome == "exited:purchase"
    assert sends(stack) == [("cart_reminder", "push")]
    # the timer and the purchase really reached the journey in one workflow task
    kinds = [e.event_type async for e in handle.fetch_history_events()]
    timer = max(i for i, k in enumerate(kinds) if k == EventType.EVENT_TYPE_TIMER_FIRED)
    signal = max(i for i, k in enumerate(kinds) if k == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    started = [i for i, k in enumerate(kinds) if k == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED]
    assert not [i for i in started if min(timer, signal) < i < max(timer, signal)]


async def test_a_burst_of_100_updates_makes_one_run(env: WorkflowEnvironment, stack: Stack) -> None:
    c = shopper()
    await stack.store.upsert_customer(c)
    async with stack.worker():
        handles = await asyncio.gather(
            *(
                stack.journeys.cart_updated(
                    c.customer_id, {"items": [{"name": f"상품{i}", "unit_price": 1000}]}, event_id=f"u{i}"
                )
                for i in range(100)
            )
        )
        run_ids = {(await h.describe()).run_id for h in handles}
        result: JourneyResult = await handles[0].result()
    assert len(run_ids) == 1
    assert len([e for e in result.timeline if e.step == "cart.updated"]) == 100
    assert sends(stack) == [("cart_reminder", "push"), ("cart_coupon", "brand_message")]


async def test_reentry_within_the_cooldown_tracks_but_sends_nothing(env: WorkflowEnvironment, stack: Stack) -> None:
    c = shopper()
    async with stack.worker():
        first = await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
        await env.sleep(timedelta(hours=2))
        await stack.journeys.purchase(c.customer_id, "o-1")
        # The purchase has ended the run: read its result without time skipping. Awaiting a result
        # unlocks the test server's clock, which then runs to any timer it holds, and it keeps the
        # ten-year run timeouts of journeys that earlier tests terminated.
        await env.sleep(timedelta(seconds=5))
        with env.auto_time_skipping_disabled():
            await first.result()
        first_run = (await first.describe()).run_id
        assert sends(stack) == [("cart_reminder", "push")]

        await env.sleep(timedelta(days=2))  # a new cart 2 days later: inside the 7-day cooldown
        second = await stack.journeys.cart_updated(c.customer_id, CART)
        await env.sleep(timedelta(hours=26))  # past the idle hour and the 24 h coupon
        with env.auto_time_skipping_disabled():
            again: JourneyResult = await second.result()
        assert (await second.describe()).run_id != first_run
        assert sends(stack) == [("cart_reminder", "push")]
        # A rule about the customer: each step ends at its first channel, none other is tried.
        assert [(e.step, e.channel, e.detail) for e in again.timeline if e.outcome is Outcome.SKIPPED] == [
            ("cart_reminder", Channel.PUSH, "reentry_cooldown"),
            ("cart_coupon", Channel.BRAND_MESSAGE, "reentry_cooldown"),
        ]

        await env.sleep(timedelta(days=6))  # 8+ days after the first run's push
        third = await stack.journeys.cart_updated(c.customer_id, CART)
        await env.sleep(timedelta(hours=2))
        await stack.journeys.cart_cleared(c.customer_id)
        await env.sleep(timedelta(seconds=5))
        with env.auto_time_skipping_disabled():
            assert (await third.result()).outcome == "exited:cart.cleared"
    assert sends(stack) == [("cart_reminder", "push"), ("cart_reminder", "push")]


UPDATES = 800  # with a run's history capped at 150 events: several continue-as-new, in seconds


async def test_many_updates_continue_as_new_and_keep_the_cart(env: WorkflowEnvironment, stack: Stack) -> None:
    c = shopper()
    await stack.store.upsert_customer(c)
    stack.journeys.cart = stack.journeys.cart.model_copy(update={"continue_as_new_after": 150})
    sem = asyncio.Semaphore(64)

    async def update(i: int) -> None:
        async with sem:
            await stack.journeys.cart_updated(
                c.customer_id, {"items": [{"name": f"상품{i}", "unit_price": 1000}]}, event_id=f"u{i}"
            )

    handle = stack.journeys.client.get_workflow_handle(cart_id(c.customer_id), result_type=JourneyResult)
    async with stack.worker():
        for start in range(0, UPDATES, 400):
            await asyncio.gather(*(update(i) for i in range(start, start + 399)))
            await update(start + 399)  # so the last update of all is the last one
        # Past the idle hour and the 24 h coupon: only handles from start_workflow skip time
        # while awaiting a result, so the clock is moved first.
        await env.sleep(timedelta(hours=26))
        result: JourneyResult = await handle.result()
        history = [e async for e in handle.fetch_history_events()]
        desc = await handle.describe()
    started = history[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id  # this run continued an earlier one
    assert started.first_execution_run_id != desc.run_id
    assert len(history) < 4096
    assert result.outcome == "completed"
    assert sends(stack) == [("cart_reminder", "push"), ("cart_coupon", "brand_message")]
    push = next(iter(stack.sandbox.messages.values()))["body"]
    assert f"상품{UPDATES - 1}" in push  # the state (latest cart) survived every continue-as-new
    assert sum(1 for e in result.timeline if e.step == "cart.updated") > 0
