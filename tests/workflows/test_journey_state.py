"""A journey's state is one serialisable structure: what continue-as-new carries, what the ``state`` query reads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel, Purpose
from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import EventType, JourneyResult, Outcome, cart_id, post_purchase_id
from durable_journeys.workflows.models import CartState, JourneyState, SentStep, TimelineEntry
from tests.factories import customer, order
from tests.workflows.test_cart_abandonment import CART, sends, shopper

WHO = {"operator": "jimin", "reason": "customer asked for the link again"}


async def _updates(stack: Stack, customer_id: str, ids: range) -> None:
    for i in ids:
        await stack.journeys.cart_updated(
            customer_id, {"items": [{"name": f"상품{i}", "unit_price": 1000}]}, event_id=f"u{i}"
        )


async def test_a_cart_that_continues_as_new_carries_its_state_and_operators_still_act_on_it(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    c = shopper()
    await stack.store.upsert_customer(c)
    stack.journeys.cart = stack.journeys.cart.model_copy(update={"continue_as_new_after": 100})
    workflow_id = cart_id(c.customer_id)
    handle = stack.journeys.client.get_workflow_handle(workflow_id, result_type=JourneyResult)
    async with stack.worker():
        await stack.journeys.cart_updated(c.customer_id, CART, event_id="first")
        await env.sleep(timedelta(hours=2))  # idle an hour: the reminder push went out
        before = await handle.query("state", result_type=CartState)
        await _updates(stack, c.customer_id, range(60))  # waiting for engagement: the history grows past 100
        await env.sleep(timedelta(seconds=5))
        after = await handle.query("state", result_type=CartState)
        # An update the first run took, told again after continue-as-new, is recognised.
        await stack.journeys.cart_updated(c.customer_id, {"items": [{"name": "중복", "unit_price": 1}]}, event_id="u3")
        await env.sleep(timedelta(seconds=5))
        again = await handle.query("state", result_type=CartState)
        # The step the first run sent is known to the new run: a resend reaches the policy (a push ad
        # a day: capped), where a run that had forgotten it would refuse ("was never sent in this run").
        resent = await stack.journeys.resend(workflow_id, "cart_reminder", **WHO)
        await env.sleep(timedelta(hours=25))
        with env.auto_time_skipping_disabled():
            result = await handle.result()

    assert before.runs == 1 and before.stage == "waiting_for_engagement" and before.customer_id == c.customer_id
    assert list(before.sent_steps) == ["cart_reminder"]
    assert after.runs >= 2  # it continued as new
    assert after.sent_steps == before.sent_steps
    assert after.timeline[: len(before.timeline)] == before.timeline  # the first run's lines, carried
    assert after.pushed_at == before.pushed_at and after.cart is not None
    assert {"first", "u0", "u59"} <= set(after.event_ids)
    assert again.cart == after.cart and again.updates == after.updates  # the repeated u3 changed nothing
    assert resent == "not sent: skipped channel_frequency_cap"
    assert result.outcome == "completed"
    assert sends(stack) == [("cart_reminder", "push"), ("cart_coupon", "brand_message")]
    pushed = [e for e in result.timeline if e.step == "cart_reminder" and e.outcome is Outcome.SENT]
    assert [e.channel for e in pushed] == [Channel.PUSH]  # the first run's send is in the last run's timeline


async def test_the_state_query_reads_what_the_story_built(env: WorkflowEnvironment, stack: Stack) -> None:
    c = customer()
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        await env.sleep(timedelta(minutes=5))
        await stack.journeys.order_shipped(o.order_id)
        await stack.journeys.order_shipped(o.order_id)  # the same event (its id: the order's) twice
        await env.sleep(timedelta(minutes=5))
        state = await handle.query("state", result_type=JourneyState)
        timeline = await stack.journeys.timeline(post_purchase_id(o.order_id))
        await stack.journeys.order_cancelled(o.order_id)
    assert state.customer_id == c.customer_id and state.runs == 1
    assert state.stage == "waiting_for_delivery"
    assert state.timeline == timeline
    assert list(state.event_ids) == [f"order.shipped:{o.order_id}"] and state.event_counts == {
        EventType.ORDER_SHIPPED: 1
    }
    assert list(state.sent_steps) == ["payment_complete", "shipping_started"]
    sent = state.sent_steps["payment_complete"]
    assert sent.purpose is Purpose.INFORMATIONAL and sent.keys[0].startswith(f"{handle.id}:payment_complete:")
    assert "name" not in sent.variables and c.phone not in str(state.model_dump())  # no profile data in it


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.-:0123456789", min_size=1, max_size=30)
entries = st.builds(
    TimelineEntry,
    step=names,
    at=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
    elapsed=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
    outcome=st.sampled_from(Outcome),
    channel=st.none() | st.sampled_from(list(Channel)),
    detail=st.none() | st.text(max_size=40),
)
states = st.builds(
    JourneyState,
    customer_id=names,
    stage=names,
    customer_unknown=st.booleans(),
    runs=st.integers(1, 1000),
    timeline=st.lists(entries, max_size=8),
    timeline_events=st.integers(0, 500),
    event_ids=st.dictionaries(names, st.none(), max_size=8),
    event_counts=st.dictionaries(st.sampled_from(EventType), st.integers(0, 20)),
    sent_steps=st.dictionaries(
        names,
        st.builds(
            SentStep,
            template=names,
            variables=st.dictionaries(names, st.text(max_size=20), max_size=3),
            purpose=st.sampled_from(Purpose),
            keys=st.lists(names, min_size=1, max_size=3),
        ),
        max_size=3,
    ),
    resends=st.dictionaries(names, st.integers(0, 5), max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(state=states, keep=st.integers(1, 10))
def test_any_state_survives_history_and_is_carried_bounded(state: JourneyState, keep: int) -> None:
    converter = pydantic_data_converter.payload_converter
    (payload,) = converter.to_payloads([state])
    assert converter.from_payloads([payload], [JourneyState]) == [state]
    carried = state.carried(timeline=keep, event_ids=keep)
    assert carried.runs == state.runs + 1
    assert carried.timeline == state.timeline[-keep:] and list(carried.event_ids) == list(state.event_ids)[-keep:]
    assert carried.event_counts == {} and carried.timeline_events == 0  # per run
    assert (carried.sent_steps, carried.resends, carried.stage) == (state.sent_steps, state.resends, state.stage)
    steps = dict(state.sent_steps)
    carried.sent_steps.clear()
    carried.timeline.clear()
    assert state.sent_steps == steps  # a copy: the run's own state is untouched


def test_a_1_0_cart_state_still_reads() -> None:
    """1.0's cart carried its seen event ids as a list: a run continued from one reads them in order."""
    old = {"cart": None, "updates": 3, "runs": 2, "event_ids": ["a", "b"], "timeline": []}
    state = CartState.model_validate(old)
    assert list(state.event_ids) == ["a", "b"] and state.updates == 3 and state.runs == 2


async def test_a_win_back_that_continues_as_new_keeps_its_timeline(env: WorkflowEnvironment, stack: Stack) -> None:
    c = customer()
    await stack.store.upsert_customer(c)
    stack.journeys.win_back = stack.journeys.win_back.model_copy(update={"continue_as_new_after": 10})
    async with stack.worker():
        handle = await stack.journeys.customer_active(c.customer_id)
        for _ in range(11):
            await stack.journeys.customer_active(c.customer_id)
            await asyncio.sleep(0)
        await env.sleep(timedelta(seconds=5))
        state = await handle.query("state", result_type=JourneyState)
        await stack.journeys.purchase(c.customer_id)
    assert state.runs == 2
    assert [e.step for e in state.timeline].count(EventType.CUSTOMER_ACTIVE.value) >= 10
