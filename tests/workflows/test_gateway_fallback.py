"""Gateway fallback: a step's channels in one provider call; the provider falls back, its receipt says where.

``fallback={"*": "gateway"}``: the journey does not wait for each channel's receipt; one request
carries AlimTalk and then SMS, and the receipt, when it comes, records the channel that delivered.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import Outcome, PostPurchaseSettings
from tests.factories import customer, order

GATEWAY = PostPurchaseSettings(fallback={"*": "gateway"}, review_hours_kst=None)


@pytest.mark.parametrize(
    ("phone", "delivered"),
    [
        ("010-1234-5678", Channel.ALIMTALK),  # AlimTalk delivers
        ("010-0000-0001", Channel.SMS),  # not a KakaoTalk user: the provider sends the SMS itself
        ("010-0000-0006", Channel.SMS),  # AlimTalk taken, then failed: the provider's SMS delivers
    ],
)
async def test_one_call_carries_both_channels_and_the_receipt_names_the_one_that_delivered(
    env: WorkflowEnvironment, stack: Stack, phone: str, delivered: Channel
) -> None:
    stack.journeys.post_purchase = GATEWAY
    c = customer(phone)
    async with stack.worker():
        handle = await stack.journeys.order_paid(order(c), c)
        await env.sleep(timedelta(hours=1))
        timeline = await stack.journeys.timeline(handle.id)
        history = [e async for e in handle.fetch_history_events()]
    payment = [(e.outcome, e.channel, e.detail) for e in timeline if e.step == "payment_complete"]
    assert payment == [
        (Outcome.SENT, Channel.ALIMTALK, "gateway fallback to sms"),
        (Outcome.DELIVERED, delivered, "gateway fallback"),
    ]
    sent = [m for m in stack.sandbox.messages.values() if m["custom_fields"]["step"] == "payment_complete"]
    assert [(m["channel"], m["delivered_channel"]) for m in sent] == [("alimtalk", delivered.value)]  # one call
    scheduled = [e for e in history if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert len(scheduled) == 1  # one send so far, whatever the channel
    receipt_timers = [
        e
        for e in history
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED and "receipt" in e.user_metadata.summary.data.decode()
    ]
    assert receipt_timers == []  # the journey did not wait for the receipt


async def test_journey_fallback_stays_the_default(env: WorkflowEnvironment, stack: Stack) -> None:
    c = customer("010-0000-0001")
    async with stack.worker():
        handle = await stack.journeys.order_paid(order(c), c)
        await env.sleep(timedelta(hours=1))
        timeline = await stack.journeys.timeline(handle.id)
    payment = [(e.outcome, e.channel) for e in timeline if e.step == "payment_complete"]
    assert payment == [
        (Outcome.REJECTED, Channel.ALIMTALK),
        (Outcome.SENT, Channel.SMS),
        (Outcome.DELIVERED, Channel.SMS),
    ]
    sent = [m["channel"] for m in stack.sandbox.messages.values() if m["custom_fields"]["step"] == "payment_complete"]
    assert sent == ["sms"]  # the sandbox refused the AlimTalk; the journey sent the SMS itself


async def test_a_step_can_choose_its_own_mode(env: WorkflowEnvironment, stack: Stack) -> None:
    stack.journeys.post_purchase = PostPurchaseSettings(fallback={"payment_complete": "gateway"}, review_hours_kst=None)
    c = customer("010-0000-0001")
    async with stack.worker():
        handle = await stack.journeys.order_paid(order(c), c)
        await env.sleep(timedelta(hours=20))
        await stack.journeys.order_shipped(handle.id.split(":", 1)[1])
        await env.sleep(timedelta(hours=1))
        timeline = await stack.journeys.timeline(handle.id)
    by_step = {(e.step, e.outcome, e.channel) for e in timeline}
    assert (("payment_complete", Outcome.DELIVERED, Channel.SMS)) in by_step
    assert ("shipping_started", Outcome.REJECTED, Channel.ALIMTALK) in by_step  # journey mode there
