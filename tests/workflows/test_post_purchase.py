"""The post-purchase journey on the time-skipping server, with the real sandbox and store.

Each test asserts which messages reached the sandbox, on which channel, at which journey time,
and what did not go out.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from datetime import time as daytime
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.converter import decode_search_attributes
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import KST, Channel, MessageStatus
from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import JOURNEY_STAGE, JourneyResult, Outcome, TimelineEntry
from tests.factories import customer, order

RECEIPT_TIMEOUT = timedelta(minutes=10)


def review_time(delivered_at: datetime) -> datetime:
    """Three days after delivery, moved to the next 10:00-20:00 KST window (patch v2)."""
    due = (delivered_at + timedelta(days=3)).astimezone(KST)
    if daytime(10) <= due.time() < daytime(20):
        return due
    opening = due.replace(hour=10, minute=0, second=0, microsecond=0)
    return opening if opening > due else opening + timedelta(days=1)


def deliveries(result: JourneyResult) -> list[tuple[str, Channel | None]]:
    return [(e.step, e.channel) for e in result.timeline if e.outcome is Outcome.DELIVERED]


def entry(result: JourneyResult, step: str, outcome: Outcome, channel: Channel | None = None) -> TimelineEntry:
    found = [
        e
        for e in result.timeline
        if e.step == step and e.outcome is outcome and (channel is None or e.channel is channel)
    ]
    assert len(found) == 1, (step, outcome, channel, result.timeline)
    return found[0]


async def timeline_after(
    env: WorkflowEnvironment, stack: Stack, phone: str, after: timedelta
) -> tuple[str, list[TimelineEntry]]:
    """Pay an order for a customer with ``phone``, let ``after`` of journey time pass."""
    c = customer(phone)
    async with stack.worker():
        handle = await stack.journeys.order_paid(order(c), c)
        await env.sleep(after)
        return handle.id, await stack.journeys.timeline(handle.id)


def sandbox_sends(stack: Stack) -> list[tuple[str, str]]:
    """(step, channel) of every message the sandbox accepted, in order."""
    return [(m["custom_fields"]["step"], m["channel"]) for m in stack.sandbox.messages.values()]


async def stage_of(handle: WorkflowHandle[Any, Any]) -> str | None:
    return (await handle.describe()).typed_search_attributes.get(JOURNEY_STAGE)


async def upserted_stages(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """Every JourneyStage value the journey wrote, in order (from its history)."""
    stages = []
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            attrs = decode_search_attributes(e.upsert_workflow_search_attributes_event_attributes.search_attributes)
            stages.extend(attrs.get(JOURNEY_STAGE.name, []))  # the other upsert: the patch's TemporalChangeVersion
    return stages


async def test_ordinary_customer_gets_four_messages_at_journey_times(env: WorkflowEnvironment, stack: Stack) -> None:
    """...and operators see the stage the journey waits in (JourneyStage) at each point."""
    c = customer()
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        await env.sleep(timedelta(hours=20))
        assert await stage_of(handle) == "waiting_for_shipping"
        assert await stack.journeys.order_shipped(o.order_id)
        await env.sleep(timedelta(days=1))
        assert await stage_of(handle) == "waiting_for_delivery"
        assert await stack.journeys.order_delivered(o.order_id)
        await env.sleep(timedelta(days=1))
        assert await stage_of(handle) == "waiting_for_review_day"
        await env.sleep(timedelta(days=5))
        assert await stage_of(handle) == "waiting_for_sale_day"
        result: JourneyResult = await handle.result()
        assert await stage_of(handle) == "completed"
    # one write per stage the journey waited in: "waiting_for_shipping" came with the start,
    # "sale" lasted no longer than its send, so neither costs an upsert
    assert await upserted_stages(handle) == [
        "waiting_for_delivery",
        "waiting_for_review_day",
        "waiting_for_sale_day",
        "completed",
    ]

    assert result.outcome == "completed"
    assert deliveries(result) == [
        ("payment_complete", Channel.ALIMTALK),
        ("shipping_started", Channel.ALIMTALK),
        ("review_request", Channel.ALIMTALK),
        ("recent_buyer_sale", Channel.SMS),
    ]
    paid = entry(result, "payment_complete", Outcome.DELIVERED)
    shipped = entry(result, "order.shipped", Outcome.EVENT)
    delivered = entry(result, "order.delivered", Outcome.EVENT)
    assert paid.elapsed < timedelta(seconds=5)
    assert abs(entry(result, "shipping_started", Outcome.SENT).at - shipped.at) < timedelta(seconds=5)
    review_at = entry(result, "review_request", Outcome.SENT).at
    sale_at = entry(result, "recent_buyer_sale", Outcome.SENT).at
    assert abs(review_at - review_time(delivered.at)) < timedelta(seconds=5)
    assert abs(sale_at - (delivered.at + timedelta(days=14))) < timedelta(seconds=5)

    # exactly these four messages reached the provider, and nothing else
    assert sandbox_sends(stack) == [
        ("payment_complete", "alimtalk"),
        ("shipping_started", "alimtalk"),
        ("review_request", "alimtalk"),
        ("recent_buyer_sale", "sms"),
    ]
    sale = list(stack.sandbox.messages.values())[-1]
    assert sale["message_type"] == "LMS"
    assert sale["body"].startswith("(광고)") and sale["body"].rstrip().endswith("080-000-0000")
    assert "김하늘" in list(stack.sandbox.messages.values())[0]["body"]
    log = await stack.store.messages(workflow_id=handle.id)
    assert [(m.step, m.channel, m.status, m.receipt_status) for m in log] == [
        ("payment_complete", "alimtalk", MessageStatus.ACCEPTED, "delivered"),
        ("shipping_started", "alimtalk", MessageStatus.ACCEPTED, "delivered"),
        ("review_request", "alimtalk", MessageStatus.ACCEPTED, "delivered"),
        ("recent_buyer_sale", "sms", MessageStatus.ACCEPTED, "delivered"),
    ]


async def test_without_stage_search_the_stage_is_shown_but_never_written(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    """``stage_search: false``: no JourneyStage at the start or later (no upsert, no stale stage), while
    the run's current details and the operators' view of its wait still say where it is."""
    c = customer()
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c, settings={"stage_search": False})
        await env.sleep(timedelta(hours=20))
        assert await stage_of(handle) is None
        assert await stack.journeys.order_shipped(o.order_id)
        await env.sleep(timedelta(days=1))
        assert await stage_of(handle) is None
        metadata = await handle.query("__temporal_workflow_metadata")
        assert metadata.current_details == "post-purchase: waiting_for_delivery"
        assert (await stack.journeys.waiting(handle.id)).waiting == "wait for delivery"
        assert await stack.journeys.order_delivered(o.order_id)
        result: JourneyResult = await handle.result()
        description = await handle.describe()
    assert description.typed_search_attributes.get(JOURNEY_STAGE) is None
    assert await upserted_stages(handle) == []
    assert result.outcome == "completed"
    assert [step for step, _ in deliveries(result)] == [
        "payment_complete",
        "shipping_started",
        "review_request",
        "recent_buyer_sale",
    ]


async def test_not_a_kakao_user_gets_sms_at_once(env: WorkflowEnvironment, stack: Stack) -> None:
    _, timeline = await timeline_after(env, stack, "010-0000-0001", timedelta(minutes=1))
    rejected = [e for e in timeline if e.outcome is Outcome.REJECTED]
    assert [(e.step, e.channel, e.detail) for e in rejected] == [
        ("payment_complete", Channel.ALIMTALK, "NOT_KAKAO_USER")
    ]
    sms = [e for e in timeline if e.outcome is Outcome.DELIVERED]
    assert [(e.step, e.channel) for e in sms] == [("payment_complete", Channel.SMS)]
    assert sms[0].at - rejected[0].at < timedelta(seconds=5)
    assert sandbox_sends(stack) == [("payment_complete", "sms")]


async def test_no_alimtalk_receipt_falls_back_after_timeout_and_late_receipt_changes_nothing(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    c = customer("010-0000-0002")
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        await env.sleep(timedelta(minutes=30))
        timeline = await stack.journeys.timeline(handle.id)
        sent = next(e for e in timeline if e.outcome is Outcome.SENT and e.channel is Channel.ALIMTALK)
        sms = next(e for e in timeline if e.outcome is Outcome.DELIVERED)
        assert sms.channel is Channel.SMS
        assert abs((sms.at - sent.at) - RECEIPT_TIMEOUT) < timedelta(seconds=5)
        assert sandbox_sends(stack) == [("payment_complete", "alimtalk"), ("payment_complete", "sms")]

        # Kakao's receipt finally arrives, signed, through the webhook app.
        alimtalk = next(m for m in stack.sandbox.messages.values() if m["channel"] == "alimtalk")
        body = json.dumps(
            {
                "receipts": [
                    {
                        "message_id": alimtalk["id"],
                        "reference": alimtalk["reference"],
                        "channel": "alimtalk",
                        "status": "delivered",
                        "custom_fields": alimtalk["custom_fields"],
                    }
                ]
            }
        ).encode()
        headers = stack.signed_receipts(body)
        with env.auto_time_skipping_disabled():
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://webhooks"
            ) as http:
                resp = await http.post("/webhooks/sandbox", content=body, headers=headers)
        assert resp.status_code == 200 and resp.json()["signalled"] == 1
        timeline = await stack.journeys.timeline(handle.id)

    late = [e for e in timeline if e.outcome is Outcome.LATE_RECEIPT]
    assert [(e.step, e.channel) for e in late] == [("payment_complete", Channel.ALIMTALK)]
    assert sandbox_sends(stack) == [("payment_complete", "alimtalk"), ("payment_complete", "sms")]
    log = {m.channel: m for m in await stack.store.messages(workflow_id=handle.id)}
    assert log["alimtalk"].receipt_late and log["alimtalk"].superseded
    assert not log["sms"].receipt_late


async def test_failed_alimtalk_receipt_falls_back_to_sms(env: WorkflowEnvironment, stack: Stack) -> None:
    _, timeline = await timeline_after(env, stack, "010-0000-0006", timedelta(minutes=1))
    failed = [e for e in timeline if e.outcome is Outcome.FAILED]
    assert [(e.step, e.channel, e.detail) for e in failed] == [
        ("payment_complete", Channel.ALIMTALK, "KAKAO_DELIVERY_FAILED")
    ]
    assert [(e.step, e.channel) for e in timeline if e.outcome is Outcome.DELIVERED] == [
        ("payment_complete", Channel.SMS)
    ]
    assert failed[0].elapsed < timedelta(seconds=5)  # at once, not after the receipt timeout
    assert sandbox_sends(stack) == [("payment_complete", "alimtalk"), ("payment_complete", "sms")]


async def test_transient_503s_are_retried_into_one_message(env: WorkflowEnvironment, stack: Stack) -> None:
    workflow_id, timeline = await timeline_after(env, stack, "010-0000-0004", timedelta(minutes=1))
    key = f"{workflow_id}:payment_complete:alimtalk"
    attempts = [a for a in stack.sandbox.attempts if a["key"] == key]
    assert [a["error"]["error"]["code"] if a["error"] else "accepted" for a in attempts] == [
        "TEMPORARILY_UNAVAILABLE",
        "TEMPORARILY_UNAVAILABLE",
        "accepted",
    ]
    assert sandbox_sends(stack) == [("payment_complete", "alimtalk")]
    log = await stack.store.messages(workflow_id=workflow_id)
    assert [(m.idempotency_key, m.status) for m in log] == [(key, MessageStatus.ACCEPTED)]
    assert [(e.step, e.channel) for e in timeline if e.outcome is Outcome.DELIVERED] == [
        ("payment_complete", Channel.ALIMTALK)
    ]


async def test_every_channel_failing_is_recorded_and_the_journey_goes_on(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    c = customer("010-0000-0003")
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        await env.sleep(timedelta(hours=1))
        await stack.journeys.order_shipped(o.order_id)
        await env.sleep(timedelta(hours=1))
        timeline = await stack.journeys.timeline(handle.id)
    assert [(e.step, e.channel, e.outcome) for e in timeline if e.channel or e.outcome is Outcome.NOT_DELIVERED] == [
        ("payment_complete", Channel.ALIMTALK, Outcome.REJECTED),
        ("payment_complete", Channel.SMS, Outcome.REJECTED),
        ("payment_complete", None, Outcome.NOT_DELIVERED),
        ("shipping_started", Channel.ALIMTALK, Outcome.REJECTED),
        ("shipping_started", Channel.SMS, Outcome.REJECTED),
        ("shipping_started", None, Outcome.NOT_DELIVERED),
    ]
    assert sandbox_sends(stack) == []


async def test_cancelled_after_shipping_sends_no_review_and_no_ad(env: WorkflowEnvironment, stack: Stack) -> None:
    c = customer()
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        await env.sleep(timedelta(hours=2))
        await stack.journeys.order_shipped(o.order_id)
        await env.sleep(timedelta(hours=2))
        assert await stack.journeys.order_cancelled(o.order_id)
        result: JourneyResult = await handle.result()
        # the journey is over: later events are accepted and change nothing
        assert not await stack.journeys.order_delivered(o.order_id)
        assert await stage_of(handle) == "exited"
    assert result.outcome == "exited:order.cancelled"
    assert sandbox_sends(stack) == [("payment_complete", "alimtalk"), ("shipping_started", "alimtalk")]
    assert await upserted_stages(handle) == ["waiting_for_delivery", "exited"]


async def test_order_paid_twice_starts_one_journey_and_sends_one_message(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    c = customer()
    o = order(c)
    async with stack.worker():
        first = await stack.journeys.order_paid(o, c)
        second = await stack.journeys.order_paid(o, c)
        await env.sleep(timedelta(minutes=5))
        assert first.id == second.id
        assert first.result_run_id == second.result_run_id
        await stack.journeys.order_cancelled(o.order_id)
        await first.result()
        # after the journey ended, a replayed order.paid webhook starts nothing new
        third = await stack.journeys.order_paid(o, c)
        assert (await third.describe()).run_id == first.result_run_id
    assert sandbox_sends(stack) == [("payment_complete", "alimtalk")]


async def test_no_shipment_within_give_up_after_ends_the_journey(env: WorkflowEnvironment, stack: Stack) -> None:
    c = customer()
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        result: JourneyResult = await handle.result()
    assert result.outcome == "gave_up:not_shipped"
    assert result.timeline[-1].elapsed >= timedelta(days=30)
    assert sandbox_sends(stack) == [("payment_complete", "alimtalk")]


@pytest.mark.parametrize(
    ("shipped_after", "delivered_after", "outcome", "ends_after"),
    [
        # The wait for delivery takes the wait for shipping's timer (day 30) while it can (engine 4),
        # but each wait's own deadline holds: 30 days from the shipment, not from the order.
        (timedelta(days=1), None, "gave_up:not_delivered", timedelta(days=31)),
        (timedelta(days=29), None, "gave_up:not_delivered", timedelta(days=59)),
        (timedelta(days=20), timedelta(days=29, hours=23), "completed", None),
        (timedelta(days=29, hours=23), timedelta(days=29, hours=23), "completed", None),
        (
            timedelta(days=29, hours=23),
            timedelta(days=30, hours=1),
            "gave_up:not_delivered",
            timedelta(days=59, hours=23),
        ),
    ],
    ids=["shipped-day-1", "shipped-day-29", "delivered-after-day-30", "both-just-in-time", "delivery-an-hour-late"],
)
async def test_each_wait_gives_up_at_its_own_deadline(
    env: WorkflowEnvironment,
    stack: Stack,
    shipped_after: timedelta,
    delivered_after: timedelta | None,
    outcome: str,
    ends_after: timedelta | None,
) -> None:
    c = customer()
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        await env.sleep(shipped_after)
        await stack.journeys.order_shipped(o.order_id)
        if delivered_after is not None:
            await env.sleep(delivered_after)
            await stack.journeys.order_delivered(o.order_id)
        result: JourneyResult = await handle.result()
    assert result.outcome == outcome
    sent = [step for step, _ in deliveries(result)]
    if outcome == "completed":
        assert sent == ["payment_complete", "shipping_started", "review_request", "recent_buyer_sale"]
    else:
        assert sent == ["payment_complete", "shipping_started"]
        assert ends_after is not None
        assert ends_after <= result.timeline[-1].elapsed < ends_after + timedelta(hours=1)


async def test_delivered_without_shipped_event_still_gets_review_and_sale(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    c = customer()
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        await env.sleep(timedelta(days=2))
        await stack.journeys.order_delivered(o.order_id)
        result: JourneyResult = await handle.result()
    assert deliveries(result) == [
        ("payment_complete", Channel.ALIMTALK),
        ("review_request", Channel.ALIMTALK),
        ("recent_buyer_sale", Channel.SMS),
    ]


async def test_ad_at_night_waits_for_eight_am_kst_without_night_consent(env: WorkflowEnvironment, stack: Stack) -> None:
    c = customer(night_consent_at=None)
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        now = await env.get_current_time()
        # choose the delivery moment so that delivery + 14 days falls at 22:00 KST (13:00 UTC)
        target = now.replace(hour=13, minute=0, second=0, microsecond=0)
        if target <= now:
            target += timedelta(days=1)
        await env.sleep(target - now)
        await stack.journeys.order_delivered(o.order_id)
        result: JourneyResult = await handle.result()
    deferred = entry(result, "recent_buyer_sale", Outcome.DEFERRED, Channel.SMS)
    sale = entry(result, "recent_buyer_sale", Outcome.SENT, Channel.SMS)
    assert deferred.detail and deferred.detail.startswith("quiet_hours")
    kst = sale.at.astimezone(KST)
    assert (kst.hour, kst.minute) == (8, 0)
    assert abs(sale.at - deferred.at - timedelta(hours=10)) < timedelta(seconds=5)
    assert sandbox_sends(stack)[-1] == ("recent_buyer_sale", "sms")


async def test_ad_without_marketing_consent_is_not_sent(env: WorkflowEnvironment, stack: Stack) -> None:
    c = customer(marketing_consent={})
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        await stack.journeys.order_delivered(o.order_id)
        result: JourneyResult = await handle.result()
    skipped = entry(result, "recent_buyer_sale", Outcome.SKIPPED, Channel.SMS)
    assert skipped.detail == "no_marketing_consent"
    assert ("recent_buyer_sale", "sms") not in sandbox_sends(stack)
    assert ("review_request", "alimtalk") in sandbox_sends(stack)


async def test_review_counts_from_delivery_even_when_delivery_arrives_mid_step(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    """``…0002``: the shipping step waits 10 minutes for a receipt; delivery lands meanwhile."""
    c = customer("010-0000-0002")
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        await env.sleep(timedelta(hours=1))
        await stack.journeys.order_shipped(o.order_id)
        await stack.journeys.order_delivered(o.order_id)
        result: JourneyResult = await handle.result()
    delivered = entry(result, "order.delivered", Outcome.EVENT)
    shipping_sms = entry(result, "shipping_started", Outcome.SENT, Channel.SMS)
    assert shipping_sms.at - delivered.at >= RECEIPT_TIMEOUT - timedelta(seconds=5)
    review = entry(result, "review_request", Outcome.SENT, Channel.ALIMTALK)
    assert abs(review.at - review_time(delivered.at)) < timedelta(seconds=5)
    sale = entry(result, "recent_buyer_sale", Outcome.SENT, Channel.SMS)
    assert abs(sale.at - (delivered.at + timedelta(days=14))) < timedelta(seconds=5)


@pytest.mark.parametrize(("delivered_kst", "review_kst"), [(14, 14), (23, 10), (7, 10)])
async def test_review_request_waits_for_daytime_in_korea(
    env: WorkflowEnvironment, stack: Stack, delivered_kst: int, review_kst: int
) -> None:
    c = customer()
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        now = (await env.get_current_time()).astimezone(KST)
        target = now.replace(hour=delivered_kst, minute=0, second=0, microsecond=0)
        if target <= now:
            target += timedelta(days=1)
        await env.sleep(target - now)
        await stack.journeys.order_delivered(o.order_id)
        result: JourneyResult = await handle.result()
    review = entry(result, "review_request", Outcome.SENT, Channel.ALIMTALK).at.astimezone(KST)
    delivered = entry(result, "order.delivered", Outcome.EVENT).at.astimezone(KST)
    assert review.hour == review_kst
    assert timedelta(days=3) <= review - delivered < timedelta(days=4)
