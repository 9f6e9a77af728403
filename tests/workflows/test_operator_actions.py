"""Operators steer running journeys: skip_wait, exit and resend, validated and recorded with who and why."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.starter.errors import ActionRefused, InvalidInput, JourneyNotFound
from durable_journeys.starter.stack import Stack
from durable_journeys.starter.testing import JourneyKit
from durable_journeys.workflows import EventType, JourneyResult, Outcome, PostPurchaseJourney, cart_id, post_purchase_id
from durable_journeys.workflows.models import OperatorAction, ResendAction
from tests import factories
from tests.factories import customer, order

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
    assert answer == "skipped: review request after delivery: the next step starts now"
    assert [m.step for m in log] == ["payment_complete", "review_request"]
    paid_at, review_at = (m.journey_time for m in log)
    assert review_at is not None and paid_at is not None and review_at - paid_at < timedelta(hours=2)
    assert operator_lines(timeline)[0] == (
        "operator",
        f"skip_wait by jimin: {WHO['reason']} (review request after delivery: the next step starts now)",
    )


async def test_skipping_a_wait_for_an_event_is_its_timeout(env: WorkflowEnvironment, stack: Stack) -> None:
    async with stack.worker():
        workflow_id, handle = await paid(env, stack)
        preview = await stack.journeys.waiting(workflow_id)
        answer = await stack.journeys.skip_wait(workflow_id, **WHO)
        result: JourneyResult = await handle.result()  # type: ignore[attr-defined]
    assert (preview.waiting, preview.on_skip) == ("wait for shipping", "the journey gives up (gave_up:not_shipped)")
    assert preview.events == [EventType.ORDER_DELIVERED, EventType.ORDER_SHIPPED]
    assert answer == "skipped: wait for shipping: the journey gives up (gave_up:not_shipped)"
    assert result.outcome == "gave_up:not_shipped"
    assert result.timeline[-1].at - result.timeline[0].at < timedelta(minutes=5)


@pytest.mark.parametrize("shipped_first", [True, False])
async def test_an_operator_skips_a_wait_as_if_the_event_came(
    env: WorkflowEnvironment, stack: Stack, shipped_first: bool
) -> None:
    """The parcel was handed over at the counter: skip 'wait for delivery' as order.delivered, not as giving up."""
    async with stack.worker():
        workflow_id, handle = await paid(env, stack)
        if shipped_first:
            await stack.journeys.order_shipped(workflow_id.split(":", 1)[1])
            await env.sleep(timedelta(minutes=5))
        preview = await stack.journeys.waiting(workflow_id)
        with pytest.raises(ActionRefused, match=re.escape("not cart.updated")):
            await stack.journeys.skip_wait(workflow_id, as_event="cart.updated", **WHO)
        answer = await stack.journeys.skip_wait(workflow_id, as_event="order.delivered", **WHO)
        result: JourneyResult = await handle.result()  # type: ignore[attr-defined]
    waited = "wait for delivery" if shipped_first else "wait for shipping"
    assert preview.waiting == waited and EventType.ORDER_DELIVERED in preview.events
    assert answer == f"skipped: {waited}: as if order.delivered came"
    assert result.outcome == "completed"  # the review request and the sale followed
    steps = [e.step for e in result.timeline if e.outcome is Outcome.DELIVERED]
    assert "review_request" in steps and "recent_buyer_sale" in steps


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


async def test_a_resend_of_an_ad_counts_against_the_caps_and_obeys_consent(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    """An ad resent is an ad: the frequency caps and a withdrawn consent stop it (one push ad a day here)."""
    consented = factories.clock - timedelta(days=30)
    c = customer(app_installed=True, push_tokens=["device-token"], marketing_consent={Channel.PUSH: consented})
    async with stack.worker():
        await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
        await env.sleep(timedelta(hours=2))  # idle an hour: the reminder push (an ad) went out
        workflow_id = cart_id(c.customer_id)
        capped = await stack.journeys.resend(workflow_id, "cart_reminder", **WHO)
        await stack.journeys.unsubscribe(c.customer_id)
        refused = await stack.journeys.resend(workflow_id, "cart_reminder", **WHO)
        log = await stack.store.messages(workflow_id=workflow_id)
        await stack.journeys.exit_journey(workflow_id, operator="jimin", reason="test over")
    assert capped == "not sent: skipped channel_frequency_cap"  # the push channel's own cap
    assert refused == "not sent: skipped unsubscribed"
    assert [(m.step, m.channel, m.status) for m in log if m.status == "accepted"] == [
        ("cart_reminder", "push", "accepted")
    ]


@pytest.mark.parametrize("limit", [0, 1, 2])
async def test_a_step_is_resent_at_most_max_resends_per_step_times(
    env: WorkflowEnvironment, stack: Stack, limit: int
) -> None:
    """Past the limit the Update is refused in its validator: the journey goes on and answers."""
    o = order(c := customer())
    await stack.journeys.order_paid(o, c, settings={"review_hours_kst": None, "max_resends_per_step": limit})
    workflow_id = post_purchase_id(o.order_id)
    async with stack.worker():
        await env.sleep(timedelta(minutes=2))
        answers = [await stack.journeys.resend(workflow_id, "payment_complete", **WHO) for _ in range(limit)]
        with pytest.raises(ActionRefused, match=re.escape(f"was resent {limit} times already")):
            await stack.journeys.resend(workflow_id, "payment_complete", **WHO)
        await env.sleep(timedelta(minutes=2))
        log = await stack.store.messages(workflow_id=workflow_id)
        timeline = await stack.journeys.timeline(workflow_id)  # the journey still answers
        assert (await stack.journeys.exit_journey(workflow_id, **WHO)).startswith("exiting")
    assert all(a.startswith("resent on alimtalk") for a in answers)
    assert [m.idempotency_key.rsplit(":", 2)[-2] for m in log] == [
        "payment_complete",
        *(f"payment_complete~resend{n}" for n in range(1, limit + 1)),
    ]
    assert len([e for e in timeline if e.detail and e.detail.startswith("resend by")]) == limit


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("reason", "called back on 010-9876-5432"),
        ("reason", "called back on ０１０-９８７６-５４３２"),  # full-width digits
        ("reason", "mail kim@example.com"),
        ("reason", "see https://crm.example/?who=kim%40example.com"),
        ("operator", "jimin@shop.example"),
        ("operator", "+82 10 9876 5432"),
    ],
)
async def test_an_update_sent_directly_with_a_phone_or_an_email_is_refused(
    env: WorkflowEnvironment, stack: Stack, field: str, text: str
) -> None:
    """``temporal workflow update execute`` skips the facade's masking: the validator refuses, nothing is kept."""
    from temporalio.client import WorkflowUpdateFailedError

    async with stack.worker():
        workflow_id, _ = await paid(env, stack)
        handle = stack.journeys.client.get_workflow_handle(workflow_id)
        action = {**WHO, field: text}
        for name, args in (("exit", action), ("skip_wait", action), ("resend", {**action, "step": "payment_complete"})):
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(name, args)
            assert f"the {field} holds a phone number or an e-mail address" in str(refused.value.cause)
        history = await handle.fetch_history()
        timeline = await stack.journeys.timeline(workflow_id)
        await stack.journeys.exit_journey(workflow_id, **WHO)
    raw = b"".join(e.SerializeToString() for e in history.events)
    assert text.encode() not in raw
    assert operator_lines(timeline) == []


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
    from durable_journeys.starter.inputs import WORKFLOW_ID_TYPE as _WORKFLOW_ID
    from durable_journeys.starter.inputs import validated as _validated

    try:
        checked = _validated(_WORKFLOW_ID, workflow_id, "workflow_id")
    except InvalidInput:
        return
    assert checked == workflow_id and '"' not in checked and " " not in checked and len(checked) <= 200


async def test_the_event_history_names_each_event_and_receipt(env: WorkflowEnvironment, stack: Stack) -> None:
    """An operator tells shipped from delivered, and which channel delivered, without opening an event.

    A receipt that came with its send is in the send's result (engine 3); one that came after
    the send answered is a signal named by its channel and status.
    """
    from temporalio.api.enums.v1 import EventType as HistoryEventType

    async with stack.worker():
        o = order(c := customer("010-5555-0002"))  # the sandbox never reports this AlimTalk's receipt
        handle = await stack.journeys.order_paid(o, c, settings={"review_hours_kst": None})
        await env.sleep(timedelta(minutes=2))
        workflow_id = post_purchase_id(o.order_id)
        kit = JourneyKit(env, stack)
        (payment,) = [m for m in await kit.sent() if m.step == "payment_complete"]
        assert await kit.deliver(payment) == "signalled"  # after the send answered
        await stack.journeys.order_shipped(o.order_id)
        await env.sleep(timedelta(minutes=5))
        await stack.journeys.order_delivered(o.order_id)
        await handle.result()
        history = await stack.journeys.client.get_workflow_handle(workflow_id).fetch_history()
    names = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert names == ["receipt alimtalk delivered", "order.shipped", "order.delivered"]
    in_results = [
        json.loads(e.activity_task_completed_event_attributes.result.payloads[0].data).get("delivery")
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    ]
    # This customer's AlimTalk receipts never come by themselves: the payment's came by signal
    # (kit.deliver); shipping and the review fell back to SMS after the receipt timeout.
    delivered_sms = ("sms", "delivered")
    assert [(d["channel"], d["status"]) if d else None for d in in_results] == [
        None,
        None,
        delivered_sms,
        None,
        delivered_sms,
        delivered_sms,
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
