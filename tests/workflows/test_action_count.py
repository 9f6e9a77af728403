"""What an ordinary journey costs in Temporal actions, pinned so that a change to it is seen in CI.

Billable actions (Temporal Cloud) are the history events counted here: the start, signals,
activity attempts, timers, search-attribute upserts and markers. A change that adds one to every
journey is a cost to every shop running the pack: account for it in bench/README.md ("What a
journey costs") and change the numbers below with it. The journeys run as production workers run
them (the pack's journeys passed through the sandbox).
"""

from __future__ import annotations

from collections import Counter
from datetime import time, timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import KST
from durable_journeys.providers.sandbox import ReceiptTiming
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.stack import Stack
from durable_journeys.starter.testing import journey_kit
from tests.factories import customer, order
from tests.workflows.test_cart_abandonment import CART, shopper

BILLABLE = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "start",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signal",
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: "activity",
    EventType.EVENT_TYPE_TIMER_STARTED: "timer",
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "upsert",
    EventType.EVENT_TYPE_MARKER_RECORDED: "marker",
}

# Paid; shipped 20 hours later; delivered a day after that; review request and recent-buyer sale.
# signal: shipped and delivered (engine 3: each message's receipt comes back in its send's answer
# when it comes within the worker's receipt grace, so no receipt signal and no receipt timer);
# timer: one for the waits for shipping and for delivery (engine 4: the wait for delivery takes
# the wait for shipping's 30-day timer, which fires no later than its own deadline), the review
# delay (and one to daytime), the sale delay; upsert: JourneyStage while waiting for delivery, for
# the review day, for the sale day (waiting for shipping is the start's stage), and at the end.
# No marker: engine 2 asks for no send queues (workflows/patches.py, GENERATIONS).
ORDINARY = {"start": 1, "activity": 4, "signal": 2, "timer": 3, "upsert": 4}
# Gateway fallback (each AlimTalk-or-SMS step; the sale is SMS only): the provider falls back by
# itself, and its receipts go to the log, not to the journey (engine 2); the sale's comes back
# with its send as above.
GATEWAY = ORDINARY
# Without stage search (stage_search false): no JourneyStage upsert; the stage is in the run's
# current details, `journeys skip` and the timeline.
UNSEARCHED = {"start": 1, "activity": 4, "signal": 2, "timer": 3}


UPDATES = 5  # ten minutes apart
GATEWAY_EVERY_STEP = {"fallback": {"*": "gateway"}}


@pytest.mark.parametrize(
    ("journey_settings", "timing", "expected"),
    [
        (None, ReceiptTiming.BEFORE_RESPONSE, ORDINARY),
        # As providers do: each receipt a moment after the answer, within the receipt grace.
        (None, ReceiptTiming.AFTER_RESPONSE, ORDINARY),
        (GATEWAY_EVERY_STEP, ReceiptTiming.BEFORE_RESPONSE, GATEWAY),
        ({"stage_search": False}, ReceiptTiming.AFTER_RESPONSE, UNSEARCHED),
        (GATEWAY_EVERY_STEP | {"stage_search": False}, ReceiptTiming.AFTER_RESPONSE, UNSEARCHED),
    ],
    ids=["journey", "journey-receipt-after-answer", "gateway", "unsearched", "gateway-unsearched"],
)
async def test_an_ordinary_post_purchase_journey_costs_the_actions_accounted_for(
    env: WorkflowEnvironment,
    tmp_path: Path,
    journey_settings: dict[str, object] | None,
    timing: ReceiptTiming,
    expected: dict[str, int],
) -> None:
    # The workers' receipt grace as in production (the kit's default is 0).
    settings = Settings(receipt_grace_seconds=3)
    async with journey_kit(env, tmp_path / "journeys.db", settings=settings, receipt_timing=timing) as kit:
        await _count(env, kit.stack, journey_settings, expected)


async def _count(
    env: WorkflowEnvironment, stack: Stack, settings: dict[str, object] | None, expected: dict[str, int]
) -> None:
    c = customer()
    o = order(c)
    async with stack.worker(check_pack_journeys=False):
        handle = await stack.journeys.order_paid(o, c, settings=settings)
        await env.sleep(timedelta(hours=20))
        await stack.journeys.order_shipped(o.order_id)
        await env.sleep(timedelta(days=1))
        await stack.journeys.order_delivered(o.order_id)
        result = await handle.result()
        with env.auto_time_skipping_disabled():
            events = [e async for e in handle.fetch_history_events()]
            timeline = await stack.journeys.timeline(handle.id)  # receipts from the log included
    sent = [e.step for e in timeline if e.outcome.value == "delivered"]
    assert result.outcome == "completed"
    assert sent == ["payment_complete", "shipping_started", "review_request", "recent_buyer_sale"]
    # The review request waits for daytime (10:00-20:00 KST) when three days after delivery is not.
    delivered = next(e.at for e in result.timeline if e.step == "order.delivered")
    night = not time(10) <= (delivered + timedelta(days=3)).astimezone(KST).time() < time(20)
    expected = {**expected, "timer": expected["timer"] + night}
    actions = Counter(BILLABLE[e.event_type] for e in events if e.event_type in BILLABLE)
    assert dict(actions) == expected, f"{sum(actions.values())} actions: {dict(actions)}"


async def test_a_burst_of_cart_updates_costs_two_idle_timers_not_one_per_update(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Engine 4: each update restarts the idle wait on the timer already running (it fires before the
    new deadline), and a timer for the rest starts only when that one fires; the push still goes out
    an hour after the last update."""
    settings = Settings(receipt_grace_seconds=3)
    c = shopper()
    async with journey_kit(env, tmp_path / "journeys.db", settings=settings) as kit:
        stack = kit.stack
        async with stack.worker(check_pack_journeys=False):
            handle = await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
            for _ in range(UPDATES - 1):
                await env.sleep(timedelta(minutes=10))
                await stack.journeys.cart_updated(c.customer_id, CART)
            await env.sleep(timedelta(hours=2))
            await stack.journeys.purchase(c.customer_id, "o-1")
            result = await handle.result()
            with env.auto_time_skipping_disabled():
                events = [e async for e in handle.fetch_history_events()]
    updates = [e.at for e in result.timeline if e.step == "cart.updated"]
    push = next(e.at for e in result.timeline if e.step == "cart_reminder" and e.outcome.value == "sent")
    assert len(updates) == UPDATES
    assert abs(push - updates[-1] - timedelta(hours=1)) < timedelta(seconds=5)
    assert result.outcome == "exited:purchase"
    timers = [e for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    # the first update's hour, the rest after the last update, the wait for the coupon
    assert len(timers) == 3, [t.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta() for t in timers]
