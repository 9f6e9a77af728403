"""Events to journeys: a caller tells delivered, duplicate, limited and ended apart; no flood ends a journey.

Every journey takes at most ``event_limit(type)`` events of a type (the facade signals no more,
whatever ids a caller makes up, and a journey signalled directly keeps no more); types a
journey takes without a count continue as new. ``/events`` and the receipt webhooks are rate
limited per caller (429 with ``Retry-After``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.starter.errors import JourneyNotFound
from durable_journeys.starter.inputs import Delivery
from durable_journeys.starter.stack import Stack
from durable_journeys.starter.webhooks import RateLimiter, create_webhook_app
from durable_journeys.workflows import (
    ALL_WORKFLOWS,
    EventType,
    JourneyEvent,
    JourneyWorkflow,
    Outcome,
    care_id,
    cart_id,
    consent_notice_id,
    post_purchase_id,
)
from durable_journeys.workflows.win_back import win_back_id
from tests import factories
from tests.factories import customer, order

pytestmark = pytest.mark.reliability

CART = {"items": [{"name": "무선 이어폰", "unit_price": 39000}]}
DATA: dict[EventType, dict[str, Any]] = {EventType.CART_UPDATED: {"cart": CART}}


async def start_post_purchase(stack: Stack) -> str:
    o = order(c := customer())
    await stack.journeys.order_paid(o, c)
    return post_purchase_id(o.order_id)


async def start_care(stack: Stack) -> str:
    o = order(c := customer())
    stack.journeys.care_segment = "first_order"  # off in the test stack unless asked for
    await stack.journeys.order_paid(o, c)
    return care_id(c.customer_id, o.order_id)


async def start_cart(stack: Stack) -> str:
    c = customer()
    await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
    return cart_id(c.customer_id)


async def start_win_back(stack: Stack) -> str:
    c = customer()
    await stack.journeys.customer_active(c.customer_id, customer=c)
    return win_back_id(c.customer_id)


async def start_consent_notices(stack: Stack) -> str:
    c = customer()
    stack.journeys.consent_notices = True
    try:
        await stack.journeys.save_profile(c)
    finally:
        stack.journeys.consent_notices = False
    return consent_notice_id(c.customer_id)


STARTS: dict[str, Callable[[Stack], Awaitable[str]]] = {
    "post-purchase": start_post_purchase,
    "care": start_care,
    "cart": start_cart,
    "win-back": start_win_back,
    "consent-notice": start_consent_notices,
}
HEARD = [
    pytest.param(journey, event_type, id=f"{journey.journey}-{event_type.value}")
    for journey in ALL_WORKFLOWS
    for event_type in EventType
    if journey.hears(event_type)
]


def event(event_type: EventType, event_id: str) -> JourneyEvent:
    return JourneyEvent(type=event_type, event_id=event_id, data=DATA.get(event_type, {}))


def signalled(history: Any, name: str) -> int:
    return sum(
        e.event_type == HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and e.workflow_execution_signaled_event_attributes.signal_name == name
        for e in history.events
    )


def test_every_journey_is_covered() -> None:
    assert {j.journey for j in ALL_WORKFLOWS} == set(STARTS)


@pytest.mark.parametrize(("journey", "event_type"), HEARD)
async def test_each_event_a_journey_hears_is_delivered_duplicate_or_ended(
    env: WorkflowEnvironment, stack: Stack, journey: type[JourneyWorkflow], event_type: EventType
) -> None:
    async with stack.worker():
        workflow_id = await STARTS[journey.journey](stack)
        await env.sleep(timedelta(seconds=1))
        handle = stack.journeys.client.get_workflow_handle(workflow_id)
        first = await stack.journeys.signal_event(workflow_id, event(event_type, "e-1"))
        if event_type in journey.exit_events:
            await env.sleep(timedelta(seconds=5))
            again = await stack.journeys.signal_event(workflow_id, event(event_type, "e-1"))
            assert again is Delivery.ENDED and not again  # it ended the journey
        else:
            again = await stack.journeys.signal_event(workflow_id, event(event_type, "e-1"))
            assert again is Delivery.DUPLICATE and not again
            await env.sleep(timedelta(seconds=5))  # no activity in flight when it ends (the test server's clock)
            await handle.terminate("test over")
        later = await stack.journeys.signal_event(workflow_id, event(event_type, "e-2"))
        repeated = await stack.journeys.signal_event(workflow_id, event(event_type, "e-1"))
        with pytest.raises(JourneyNotFound):
            await stack.journeys.signal_event(f"{journey.journey}:never-started-1", event(event_type, "e-1"))
    assert first is Delivery.DELIVERED and first
    assert (later, repeated) == (Delivery.ENDED, Delivery.ENDED)


@pytest.mark.parametrize(
    ("method", "event_type"),
    [
        ("order_shipped", "order.shipped"),
        ("order_delivered", "order.delivered"),
        ("order_cancelled", "order.cancelled"),
        ("order_refunded", "order.refunded"),
    ],
)
async def test_order_events_through_the_facade_and_events_tell_the_cases_apart(
    env: WorkflowEnvironment, stack: Stack, method: str, event_type: str
) -> None:
    app = create_webhook_app(stack.journeys, stack.providers, api_key="k" * 40)
    auth = {"Authorization": "Bearer " + "k" * 40}
    o = order(c := customer())
    async with stack.worker(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as http:
        handle = await stack.journeys.order_paid(o, c, settings={"review_hours_kst": None})
        await env.sleep(timedelta(minutes=1))
        post = {"type": event_type, "order_id": o.order_id, "event_id": "shop-1"}
        answers = [(await http.post("/events", json=post, headers=auth)).json()]
        if event_type in ("order.cancelled", "order.refunded"):
            await handle.result()
        else:
            answers.append((await http.post("/events", json=post, headers=auth)).json())
            await stack.journeys.order_cancelled(o.order_id)
            await handle.result()
        facade = await getattr(stack.journeys, method)(o.order_id)  # the journey has ended
        again = (await http.post("/events", json={**post, "event_id": "shop-2"}, headers=auth)).json()
        unknown = await http.post("/events", json={**post, "order_id": "never-paid-1"}, headers=auth)
    assert answers[0] == {"delivered": 1, "outcome": "delivered"}
    assert answers[1:] in ([], [{"delivered": 0, "outcome": "duplicate"}])
    assert facade is Delivery.ENDED and not facade
    assert again == {"delivered": 0, "outcome": "ended"}
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("start", "event_type", "send"),
    [
        ("post-purchase", EventType.ORDER_SHIPPED, "facade"),
        ("post-purchase", EventType.ORDER_DELIVERED, "events"),
        ("care", EventType.APP_OPENED, "emit"),
        ("care", EventType.APP_INSTALLED, "events"),
        ("win-back", EventType.MESSAGE_OPENED, "emit"),
    ],
)
async def test_a_flood_of_new_event_ids_reaches_a_journey_no_more_than_it_can_use(
    env: WorkflowEnvironment, stack: Stack, start: str, event_type: EventType, send: str
) -> None:
    """300 posts of one type, each with a new id: the journey's history takes ``event_limit`` of them."""
    app = create_webhook_app(stack.journeys, stack.providers, api_key="k" * 40)  # no rate limit here
    auth = {"Authorization": "Bearer " + "k" * 40}
    journey = next(j for j in ALL_WORKFLOWS if j.journey == start)
    limit = journey.event_limit(event_type)
    assert limit is not None
    async with stack.worker(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as http:
        workflow_id = await STARTS[start](stack)
        await env.sleep(timedelta(seconds=1))
        customer_id = (await stack.journeys.client.get_workflow_handle(workflow_id).describe()).typed_search_attributes
        order_id = workflow_id.split(":")[-1]
        answers: list[Any] = []
        for n in range(300):
            item = event(event_type, f"flood-{n}")
            if send == "facade":
                answers.append(await stack.journeys.signal_event(workflow_id, item))
            elif send == "emit":
                answers.append(await stack.journeys.emit(_customer(customer_id), item))
            elif event_type.value.startswith("order."):
                body = {"type": event_type.value, "order_id": order_id, "event_id": f"flood-{n}"}
                answers.append((await http.post("/events", json=body, headers=auth)).json()["delivered"])
            else:
                body = {"type": event_type.value, "customer_id": _customer(customer_id), "event_id": f"flood-{n}"}
                answers.append((await http.post("/events", json=body, headers=auth)).json()["delivered"])
        await env.sleep(timedelta(seconds=1))
        handle = stack.journeys.client.get_workflow_handle(workflow_id)
        history = await handle.fetch_history()
        timeline = await stack.journeys.timeline(workflow_id)
        running = (await handle.describe()).status
        await handle.terminate("test over")
    assert sum(map(bool, answers)) == limit
    assert signalled(history, event_type.value) == limit
    assert len([e for e in timeline if e.step == event_type.value]) <= limit + 1
    assert running is not None and running.name == "RUNNING"
    if send == "facade":
        assert answers[limit:] == [Delivery.LIMITED] * (300 - limit)


def _customer(attributes: Any) -> str:
    from durable_journeys.workflows import CUSTOMER_ID

    value = attributes.get(CUSTOMER_ID)
    assert value is not None
    return str(value)


async def test_a_journey_signalled_directly_keeps_no_more_than_its_limit(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    """Past the facade (a client of its own, the temporal CLI): state and timeline stay bounded."""
    async with stack.worker():
        workflow_id = await start_care(stack)
        await env.sleep(timedelta(seconds=1))
        handle = stack.journeys.client.get_workflow_handle(workflow_id)
        for n in range(60):
            await handle.signal("app.opened", JourneyEvent(type=EventType.APP_OPENED, event_id=f"direct-{n}"))
        await env.sleep(timedelta(seconds=1))
        timeline = await stack.journeys.timeline(workflow_id)
        await handle.terminate("test over")
    limit = 20
    opened = [(e.outcome, e.detail) for e in timeline if e.step == "app.opened"]
    assert opened == [(Outcome.EVENT, None)] * limit + [(Outcome.IGNORED, f"more than {limit} events of this type")]


async def test_a_cart_flooded_with_updates_continues_as_new_and_keeps_going(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    """Cart updates are legitimately many: the run continues as new instead of being cut off."""
    consented = factories.clock - timedelta(days=30)
    c = customer(push_tokens=["t-1"], app_installed=True, marketing_consent={Channel.PUSH: consented})
    stack.journeys.cart = stack.journeys.cart.model_copy(update={"continue_as_new_after": 100})
    async with stack.worker():
        for n in range(120):
            await stack.journeys.cart_updated(c.customer_id, CART, customer=c if n == 0 else None, event_id=f"u-{n}")
        await env.sleep(timedelta(hours=2))  # idle: the reminder goes out from the latest run
        described = await stack.journeys.client.get_workflow_handle(cart_id(c.customer_id)).describe()
        log = await stack.store.messages(workflow_id=cart_id(c.customer_id))
        await stack.journeys.client.get_workflow_handle(cart_id(c.customer_id)).terminate("test over")
    assert described.run_id != described.raw_description.workflow_execution_info.first_run_id  # continued as new
    assert [(m.step, m.channel) for m in log] == [("cart_reminder", "push")]


# -- per-caller rate limits ------------------------------------------------------------------------


async def test_events_over_the_rate_are_answered_429_with_retry_after(stack: Stack) -> None:
    app = create_webhook_app(
        stack.journeys, stack.providers, api_key="k" * 40, events_limit=RateLimiter(rate=0.5, burst=3)
    )
    auth = {"Authorization": "Bearer " + "k" * 40}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as http:
        codes = [(await http.post("/events", json={"type": "nope"}, headers=auth)) for _ in range(5)]
    assert [r.status_code for r in codes] == [422, 422, 422, 429, 429]
    assert codes[3].headers["retry-after"] == "2"  # half a request a second: the next in two seconds


async def test_receipt_webhooks_over_the_rate_are_answered_429(stack: Stack) -> None:
    app = create_webhook_app(
        stack.journeys, stack.providers, api_key="k" * 40, receipts_limit=RateLimiter(rate=1, burst=2)
    )
    body = json.dumps({"receipts": []}).encode()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as http:
        codes = [
            (await http.post("/webhooks/sandbox", content=body, headers=stack.signed_receipts(body))).status_code
            for _ in range(4)
        ]
    assert codes == [200, 200, 429, 429]


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=1000),
    burst=st.integers(min_value=1, max_value=500),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=300),
)
def test_a_caller_never_gets_more_than_its_burst_and_rate(rate: float, burst: int, gaps: list[float]) -> None:
    limiter = RateLimiter(rate, burst)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        wait = limiter.wait("caller", now)
        assert wait >= 0
        if wait == 0:
            allowed += 1
        else:
            assert wait <= 1 / rate + 1e-9  # the answer says when one more would pass
    assert allowed <= burst + rate * now + 1e-6
    assert limiter.wait("someone else", now) == 0  # per caller


def test_the_limiter_keeps_a_bounded_number_of_callers() -> None:
    limiter = RateLimiter(1, 1, max_callers=100)
    for n in range(1000):
        limiter.wait(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert len(limiter._buckets) == 100
