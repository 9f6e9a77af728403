"""One customer in post-purchase, care and cart journeys at once; events reach each that cares."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import EventType, JourneyResult, care_id, cart_id, post_purchase_id
from tests import factories
from tests.factories import customer, order

CART = {"items": [{"name": "무선 이어폰", "unit_price": 39000}]}


@pytest.fixture
def care_segment() -> str:
    return "first_order"


async def test_one_purchase_reaches_every_journey_that_cares(env: WorkflowEnvironment, stack: Stack) -> None:
    consented = factories.clock - timedelta(days=30)
    c = customer(
        app_installed=True,
        push_tokens=["device-token-1"],
        marketing_consent={Channel.SMS: consented, Channel.PUSH: consented},
    )
    first, second = order(c), order(c)
    async with stack.worker():
        await stack.journeys.order_paid(first, c)
        cart = await stack.journeys.cart_updated(c.customer_id, CART)
        await env.sleep(timedelta(minutes=30))
        # three journeys run for this customer now
        for workflow_id in (
            post_purchase_id(first.order_id),
            care_id(c.customer_id, first.order_id),
            cart_id(c.customer_id),
        ):
            assert (await stack.journeys.client.get_workflow_handle(workflow_id).describe()).status == 1

        await stack.journeys.order_paid(second, c)  # one purchase event
        cart_result: JourneyResult = await cart.result()
        await env.sleep(timedelta(minutes=5))
        second_log = await stack.store.messages(workflow_id=post_purchase_id(second.order_id))
        with pytest.raises(RPCError):  # not a first order: no second care journey
            await stack.journeys.client.get_workflow_handle(care_id(c.customer_id, second.order_id)).describe()
        care = await stack.journeys.client.get_workflow_handle(care_id(c.customer_id, first.order_id)).describe()
    assert cart_result.outcome == "exited:purchase"
    assert [m.step for m in await stack.store.messages(workflow_id=cart_id(c.customer_id))] == []
    assert [(m.step, m.channel) for m in second_log] == [("payment_complete", "alimtalk")]
    assert care.status == 1  # the care journey goes on, untouched by the second purchase


async def test_app_and_message_events_are_routed_by_customer(env: WorkflowEnvironment, stack: Stack) -> None:
    c = customer(app_installed=True, push_tokens=["t"])
    o = order(c)
    async with stack.worker():
        await stack.journeys.order_paid(o, c)
        await stack.journeys.cart_updated(c.customer_id, CART)
        await env.sleep(timedelta(minutes=1))
        assert await stack.journeys.emit(c.customer_id, {"type": "app.opened"}) == 1  # care only
        # The care journey reads no message events (its class does not listen to them): the cart only.
        assert await stack.journeys.emit(c.customer_id, {"type": "message.clicked"}) == 1
        assert await stack.journeys.emit("nobody-here", {"type": "app.opened"}) == 0
        timeline = await stack.journeys.timeline(care_id(c.customer_id, o.order_id))
    assert [e.step for e in timeline if e.step.startswith(("app.", "message."))] == ["app.opened"]


async def test_emit_routes_by_what_each_journey_class_hears(env: WorkflowEnvironment, stack: Stack) -> None:
    """Routing lives on the journey classes; an order event names no order here, so it reaches no journey."""
    c = customer()
    o = order(c)
    async with stack.worker():
        await stack.journeys.order_paid(o, c)
        await env.sleep(timedelta(minutes=1))
        assert await stack.journeys.emit(c.customer_id, {"type": "order.shipped"}) == 0  # use order_shipped(order_id)
        assert await stack.journeys.order_shipped(o.order_id)
        await env.sleep(timedelta(minutes=1))  # the shipping message goes out before the worker stops
        timeline = await stack.journeys.timeline(post_purchase_id(o.order_id))
    assert [e.step for e in timeline if e.step.startswith("order.")] == ["order.shipped"]
    hearing = {j.journey for j in stack.journeys.journey_classes if j.hears(EventType.MESSAGE_CLICKED)}
    assert hearing == {"cart", "win-back"}  # not care: it reads no message events
