"""The post-purchase journey on the time-skipping server, with the real sandbox and store."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from activities import Channel
from starter.stack import Stack
from tests.factories import customer, order
from workflows import JourneyResult, Outcome


def sent(result: JourneyResult) -> list[tuple[str, Channel | None, Outcome]]:
    return [(e.step, e.channel, e.outcome) for e in result.timeline if e.outcome in (Outcome.DELIVERED,)]


async def test_ordinary_customer_gets_four_messages_at_journey_times(env: WorkflowEnvironment, stack: Stack) -> None:
    c = customer()
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        await env.sleep(timedelta(hours=20))
        assert await stack.journeys.order_shipped(o.order_id)
        await env.sleep(timedelta(days=1))
        assert await stack.journeys.order_delivered(o.order_id)
        result: JourneyResult = await handle.result()
    assert result.outcome == "completed"
    print(result.timeline)
    delivered = [e for e in result.timeline if e.outcome is Outcome.DELIVERED]
    assert [(e.step, e.channel) for e in delivered] == [
        ("payment_complete", Channel.ALIMTALK),
        ("shipping_started", Channel.ALIMTALK),
        ("review_request", Channel.ALIMTALK),
        ("recent_buyer_sale", Channel.SMS),
    ]
    messages = list(stack.sandbox.messages.values())
    assert [(m["channel"], m["template_code"]) for m in messages] == [
        ("alimtalk", "ORDER_PAID_V1"), ("alimtalk", "ORDER_SHIPPED_V1"),
        ("alimtalk", "REVIEW_REQUEST_V1"), ("sms", None),
    ]
