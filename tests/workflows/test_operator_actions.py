"""Operators steer running journeys: skip_wait, exit and resend, validated and recorded with who and why."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities import Channel
from starter.errors import ActionRefused, InvalidInput, JourneyNotFound
from starter.stack import Stack
from tests import factories
from tests.factories import customer, order
from workflows import JourneyResult, Outcome, PostPurchaseJourney, cart_id, post_purchase_id
from workflows.models import OperatorAction, ResendAction

CART = {"items": [{"name": "무선 이어폰", "unit_price": 39000}]}
WHO = {"operator": "jimin", "reason": "customer called: parcel handed over at the counter"}


async def paid(env: WorkflowEnvironment, stack: Stack) -> tuple[str, object]:
    """An order whose payment message went out; its journey now waits for shipping."""
    o = order(c := customer())
    handle = await stack.journeys.order_paid(o, c, settings={"review_hours_kst": None})  # no daytime wait
    await env.sleep(timedelta(minutes=2))
    return post_purchase_id(o.order_id), handle


def operator_lines(timeline: list) -> list[tuple[str, str | None]]:
    return [(e.step, e.detail) for e in timeline if e.outcome is Outcome.OPERATOR]


async def test_skip_wait_ends_the_current_wait_and_the_story_goes_on(env: WorkflowEnvironment, stack: Stack) -> None:
    async with stack.worker():
        workflow_id, _ = await paid(env, stack)
        await stack.journeys.order_delivered(workflow_id.split(":", 1)[1])
        await env.sleep(timedelta(hours=1))  # the review request waits three days after delivery
        assert [m.step for m in await stack.store.messages(workflow_id=workflow_id)] == ["payment_complete"]
        answer = await stack.journeys.skip_wait(workflow_id, **WHO)
        await env.sleep(timedelta(minutes=1))
        log = await stack.store.messages(workflow_id=workflow_id)
        timeline = await stack.journeys.timeline(workflow_id)
        await stack.journeys.exit_journey(workflow_id, operator="jimin", reason="test over")
    assert answer == "skipped: review request after delivery"
    assert [m.step for m in log] == ["payment_complete", "review_request"]
    paid_at, review_at = (m.journey_time for m in log)
    assert review_at is not None and paid_at is not None and review_at - paid_at < timedelta(hours=2)
    assert operator_lines(timeline)[0] == (
        "operator",
        f"skip_wait by jimin: {WHO['reason']} (review request after delivery)",
    )


async def test_skipping_a_wait_for_an_event_is_its_timeout(env: WorkflowEnvironment, stack: Stack) -> None:
    async with stack.worker():
        workflow_id, handle = await paid(env, stack)
        await stack.journeys.skip_wait(workflow_id, **WHO)
        result: JourneyResult = await handle.result()  # type: ignore[attr-defined]
    assert result.outcome == "gave_up:not_shipped"
    assert result.timeline[-1].at - result.timeline[0].at < timedelta(minutes=5)


async def test_exit_ends_the_journey_and_nothing_more_is_sent(env: WorkflowEnvironment, stack: Stack) -> None:
    async with stack.worker():
        workflow_id, handle = await paid(env, stack)
        answer = await stack.journeys.exit_journey(workflow_id, **WHO)
        result: JourneyResult = await handle.result()  # type: ignore[attr-defined]
        assert not await stack.journeys.order_shipped(workflow_id.split(":", 1)[1])  # ended: nobody hears it
        await env.sleep(timedelta(days=20))
        log = await stack.store.messages(workflow_id=workflow_id)
    assert answer.startswith("exiting")
    assert result.outcome == "exited:operator"
    assert [m.step for m in log] == ["payment_complete"]
    assert operator_lines(result.timeline) == [("operator", f"exit by jimin: {WHO['reason']}")]
    assert (result.timeline[-1].step, result.timeline[-1].detail) == ("journey", "ended by operator jimin")


@pytest.mark.parametrize("channel", [None, Channel.SMS])
async def test_resend_sends_the_step_again_under_a_new_key_linked_to_the_first(
    env: WorkflowEnvironment, stack: Stack, channel: Channel | None
) -> None:
    async with stack.worker():
        workflow_id, _ = await paid(env, stack)
        answer = await stack.journeys.resend(workflow_id, "payment_complete", channel=channel, **WHO)
        await env.sleep(timedelta(minutes=2))
        log = await stack.store.messages(workflow_id=workflow_id)
        timeline = await stack.journeys.timeline(workflow_id)
        await stack.journeys.exit_journey(workflow_id, operator="jimin", reason="test over")
    sent_on = channel or Channel.ALIMTALK
    first, again = log
    assert answer.startswith(f"resent on {sent_on.value}")
    assert (again.step, again.channel, again.resend_of) == ("payment_complete", sent_on.value, first.idempotency_key)
    assert again.idempotency_key == f"{workflow_id}:payment_complete~resend1:{sent_on.value}"
    assert operator_lines(timeline) == [("payment_complete", f"resend by jimin: {WHO['reason']}")]
    resent = [(e.outcome, e.channel) for e in timeline if e.step == "payment_complete" and e.detail == "resend"]
    assert resent == [(Outcome.SENT, sent_on), (Outcome.DELIVERED, sent_on)]  # its receipt reached the journey


async def test_a_resend_of_an_ad_skips_the_caps_but_still_obeys_consent(env: WorkflowEnvironment, stack: Stack) -> None:
    """Resending an ad passes the duplicate-content window and the caps, never a withdrawn consent."""
    consented = factories.clock - timedelta(days=30)
    c = customer(app_installed=True, push_tokens=["device-token"], marketing_consent={Channel.PUSH: consented})
    async with stack.worker():
        await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
        await env.sleep(timedelta(hours=2))  # idle an hour: the reminder push (an ad) went out
        workflow_id = cart_id(c.customer_id)
        again = await stack.journeys.resend(workflow_id, "cart_reminder", **WHO)
        await stack.journeys.unsubscribe(c.customer_id)
        refused = await stack.journeys.resend(workflow_id, "cart_reminder", **WHO)
        log = await stack.store.messages(workflow_id=workflow_id)
        await stack.journeys.exit_journey(workflow_id, operator="jimin", reason="test over")
    assert again.startswith("resent on push")  # the same content within a day, over the 1-a-day push cap
    assert refused == "not sent: skipped unsubscribed"
    assert [(m.step, m.channel, m.resend_of is not None) for m in log] == [
        ("cart_reminder", "push", False),
        ("cart_reminder", "push", True),
    ]


@pytest.mark.parametrize(
    ("update", "args", "message"),
    [
        (
            "resend",
            {"step": "review_request"},
            "step 'review_request' was never sent in this run (sent: payment_complete)",
        ),
        ("resend", {"step": "payment_complete", "channel": Channel.PUSH}, "is not sent on push (use alimtalk, sms)"),
        ("resend", {"step": "no_such_step"}, "was never sent in this run"),
    ],
)
async def test_what_makes_no_sense_is_refused_with_a_reason(
    env: WorkflowEnvironment, stack: Stack, update: str, args: dict, message: str
) -> None:
    async with stack.worker():
        workflow_id, _ = await paid(env, stack)
        with pytest.raises(ActionRefused, match=re.escape(message)):
            await stack.journeys.resend(workflow_id, **args, **WHO)
        timeline = await stack.journeys.timeline(workflow_id)
        await stack.journeys.exit_journey(workflow_id, operator="jimin", reason="test over")
    assert operator_lines(timeline) == []  # a refused action leaves no trace in the journey


async def test_nothing_is_done_to_an_ended_journey(env: WorkflowEnvironment, stack: Stack) -> None:
    async with stack.worker():
        workflow_id, handle = await paid(env, stack)
        await stack.journeys.exit_journey(workflow_id, **WHO)
        await handle.result()  # type: ignore[attr-defined]
        for act in (
            stack.journeys.skip_wait(workflow_id, **WHO),
            stack.journeys.exit_journey(workflow_id, **WHO),
            stack.journeys.resend(workflow_id, "payment_complete", **WHO),
        ):
            with pytest.raises(ActionRefused, match="the journey has ended"):
                await act
        with pytest.raises(JourneyNotFound):
            await stack.journeys.exit_journey("post-purchase:never-started-1", **WHO)


def test_skip_is_refused_while_the_journey_is_not_waiting() -> None:
    journey = PostPurchaseJourney()  # validators read only the journey's state
    with pytest.raises(ApplicationError, match="not waiting now"):
        journey._check_skip_wait(OperatorAction(**WHO))
    journey._waiting = "wait for shipping"
    journey._check_skip_wait(OperatorAction(**WHO))
    journey._ended = True
    with pytest.raises(ApplicationError, match="has ended"):
        journey._check_skip_wait(OperatorAction(**WHO))
    with pytest.raises(ApplicationError, match="has ended"):
        journey._check_resend(ResendAction(step="x", **WHO))


@pytest.mark.parametrize(
    "who",
    [
        {"operator": "", "reason": "r"},
        {"operator": "jimin", "reason": ""},
        {"operator": "x" * 65, "reason": "r"},
        {"operator": "jimin", "reason": "r" * 301},
        {"operator": "ji\nmin", "reason": "r"},
        {"operator": "jimin", "reason": "line\x00break"},
    ],
)
async def test_who_and_why_are_required_and_bounded_before_anything_is_sent(stack: Stack, who: dict) -> None:
    with pytest.raises(InvalidInput, match="^invalid action: "):
        await stack.journeys.exit_journey("post-purchase:whatever-1", **who)


@settings(max_examples=40, deadline=None)
@given(workflow_id=st.text(min_size=1, max_size=250))
def test_workflow_ids_that_are_no_ids_are_refused(workflow_id: str) -> None:
    from starter.journeys import _WORKFLOW_ID, _validated

    try:
        checked = _validated(_WORKFLOW_ID, workflow_id, "workflow_id")
    except InvalidInput:
        return
    assert checked == workflow_id and '"' not in checked and " " not in checked and len(checked) <= 200


async def test_the_event_history_names_each_event_and_receipt(env: WorkflowEnvironment, stack: Stack) -> None:
    """An operator tells shipped from delivered, and which channel delivered, without opening an event."""
    from temporalio.api.enums.v1 import EventType as HistoryEventType

    async with stack.worker():
        workflow_id, handle = await paid(env, stack)
        order_id = workflow_id.split(":", 1)[1]
        await stack.journeys.order_shipped(order_id)
        await env.sleep(timedelta(minutes=5))
        await stack.journeys.order_delivered(order_id)
        await handle.result()  # type: ignore[attr-defined]
        history = await stack.journeys.client.get_workflow_handle(workflow_id).fetch_history()
    names = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert names == [
        "receipt alimtalk delivered",
        "order.shipped",
        "receipt alimtalk delivered",
        "order.delivered",
        "receipt alimtalk delivered",
        "receipt sms delivered",
    ]


async def test_a_phone_or_an_email_typed_into_the_reason_never_reaches_history(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    async with stack.worker():
        workflow_id, _ = await paid(env, stack)
        await stack.journeys.exit_journey(
            workflow_id, operator="jimin@shop.example", reason="asked on 010-9876-5432, mail kim@example.com"
        )
        history = await stack.journeys.client.get_workflow_handle(workflow_id).fetch_history()
        timeline = await stack.journeys.timeline(workflow_id)
    raw = b"".join(e.SerializeToString() for e in history.events)
    for text in ("010-9876-5432", "kim@example.com", "jimin@shop.example"):
        assert text.encode() not in raw
    (line,) = operator_lines(timeline)
    assert "9876" not in (line[1] or "") and line[1] and line[1].startswith("exit by ")
