"""Bad input is refused with a clear error before any journey starts or any message goes out."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.service import RPCError

from durable_journeys.activities import Channel, Template, TemplateRegistry
from durable_journeys.starter import InvalidInput, JourneyNotFound
from durable_journeys.starter.stack import Stack
from tests.factories import customer, order


def order_dict(customer_id: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": "o-bad-1",
        "customer_id": customer_id,
        "amount": 1000,
        "items": [{"name": "양말", "unit_price": 1000}],
    }
    data.update(overrides)
    return data


async def assert_nothing_started(stack: Stack, order_id: str) -> None:
    with pytest.raises(RPCError):
        await stack.journeys.client.get_workflow_handle(f"post-purchase:{order_id}").describe()
    assert stack.sandbox.messages == {}


@pytest.mark.parametrize(
    ("customer_overrides", "order_overrides", "message"),
    [
        ({"phone": None, "email": None}, {}, "needs a phone, an email, a push token or an address"),
        ({"phone": "12345"}, {}, "phone: phone must be a Korean number"),
        ({"email": "not-an-email", "phone": None}, {}, "email: email is not a valid address"),
        ({}, {"amount": -5}, "amount: Input should be greater than 0"),
        ({}, {"order_id": ""}, "order_id: String should match pattern"),
        ({}, {"items": []}, "items: List should have at least 1 item"),
        ({"customer_id": "010-1234-5678@x"}, {}, "customer_id: String should match pattern"),
    ],
)
async def test_invalid_order_or_customer(
    stack: Stack, customer_overrides: dict[str, Any], order_overrides: dict[str, Any], message: str
) -> None:
    c = customer().model_dump()
    c.update(customer_overrides)
    o = order_dict(c["customer_id"], **order_overrides)
    with pytest.raises(InvalidInput) as err:
        await stack.journeys.order_paid(o, c)
    assert message in str(err.value), str(err.value)
    assert await stack.store.get_customer(c["customer_id"]) is None
    await assert_nothing_started(stack, "o-bad-1")


async def test_order_of_another_customer(stack: Stack) -> None:
    c = customer()
    with pytest.raises(InvalidInput, match="customer_id: does not match"):
        await stack.journeys.order_paid(order_dict("someone-else"), c)


async def test_template_with_a_variable_the_journey_does_not_provide(stack: Stack) -> None:
    templates = TemplateRegistry(
        [
            Template(code="order_paid", texts={Channel.ALIMTALK: "#{coupon_code}", Channel.SMS: "x"}),
            Template(code="order_shipped", texts={Channel.ALIMTALK: "x", Channel.SMS: "x"}),
            Template(code="review_request", texts={Channel.ALIMTALK: "x", Channel.SMS: "x"}),
            Template(code="recent_buyer_sale", texts={Channel.SMS: "x"}),
        ]
    )
    stack.journeys.templates = templates
    c = customer()
    with pytest.raises(InvalidInput, match="payment_complete: template 'order_paid' needs variable\\(s\\) coupon_code"):
        await stack.journeys.order_paid(order_dict(c.customer_id), c)
    await assert_nothing_started(stack, "o-bad-1")


async def test_a_name_sms_cannot_carry_is_refused_up_front(stack: Stack) -> None:
    c = customer(name="하늘🌤")
    with pytest.raises(InvalidInput, match="cp949"):
        await stack.journeys.order_paid(order(c), c)


async def test_events_for_unknown_or_malformed_orders(stack: Stack) -> None:
    with pytest.raises(JourneyNotFound):
        await stack.journeys.order_shipped("never-paid")
    with pytest.raises(InvalidInput, match="order_id"):
        await stack.journeys.order_shipped("")
    with pytest.raises(InvalidInput):
        await stack.journeys.order_paid(
            order_dict("c-1"), customer(customer_id="c-1"), settings={"receipt_timeout": "-PT1M"}
        )
