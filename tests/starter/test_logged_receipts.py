"""Receipts nobody waits for by signal (gateway chains, engine 2) reach the timeline from the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_journeys.activities import Channel, MessageRecord, MessageStatus
from durable_journeys.starter.operating import with_logged_receipts
from durable_journeys.workflows import Outcome, TimelineEntry

START = datetime(2026, 12, 1, tzinfo=UTC)


def entry(step: str, outcome: Outcome, minutes: int, channel: Channel | None = None) -> TimelineEntry:
    at = START + timedelta(minutes=minutes)
    return TimelineEntry(step=step, at=at, elapsed=at - START, outcome=outcome, channel=channel)


def logged(step: str, status: str, at: datetime, *, channel: str = "sms", code: str | None = None) -> MessageRecord:
    return MessageRecord(
        idempotency_key=f"wf:{step}:alimtalk",
        workflow_id="wf",
        step=step,
        channel="alimtalk",
        customer_id="c",
        provider="sandbox",
        purpose="informational",
        template=step,
        status=MessageStatus.ACCEPTED,
        attempts=1,
        receipt_status=status,
        receipt_error_code=code,
        receipt_channel=channel,
        receipt_at=at,
        final_channel="sms",
        receipt_awaited=False,
        created_at=at,
    )


TIMELINE = [
    entry("journey", Outcome.EVENT, 0),
    entry("payment_complete", Outcome.SENT, 1, Channel.ALIMTALK),
    entry("order.shipped", Outcome.EVENT, 60),
    entry("shipping_started", Outcome.SENT, 61, Channel.ALIMTALK),
]


@pytest.mark.parametrize(
    ("status", "code", "outcome", "detail"),
    [
        ("delivered", None, Outcome.DELIVERED, "gateway fallback"),
        ("failed", "SMS_FAILED", Outcome.FAILED, "SMS_FAILED; gateway fallback exhausted"),
    ],
)
def test_a_logged_receipt_follows_its_step_s_sent_line(
    status: str, code: str | None, outcome: Outcome, detail: str
) -> None:
    receipt_at = START + timedelta(minutes=2)
    merged = with_logged_receipts(TIMELINE, [logged("payment_complete", status, receipt_at, code=code)])
    assert [(e.step, e.outcome) for e in merged] == [
        ("journey", Outcome.EVENT),
        ("payment_complete", Outcome.SENT),
        ("payment_complete", outcome),
        ("order.shipped", Outcome.EVENT),
        ("shipping_started", Outcome.SENT),
    ]
    added = merged[2]
    assert (added.channel, added.detail, added.at, added.elapsed) == (
        Channel.SMS,
        detail,
        receipt_at,
        timedelta(minutes=2),
    )


@given(offset=st.integers(min_value=-10_000, max_value=10_000))
def test_a_logged_receipt_never_goes_before_its_send(offset: int) -> None:
    """The log's clock is the provider's: under time skipping, or with skew, it may read earlier."""
    at = START + timedelta(minutes=61) + timedelta(seconds=offset)
    merged = with_logged_receipts(TIMELINE, [logged("shipping_started", "delivered", at)])
    assert merged[-1].at == max(at, TIMELINE[-1].at)
    assert [e.at for e in merged] == sorted(e.at for e in merged)


def test_without_logged_receipts_the_timeline_is_the_journey_s() -> None:
    assert with_logged_receipts(TIMELINE, []) == TIMELINE
    unsent = logged("review_request", "delivered", START)  # a step with no sent line: nothing to attach
    assert with_logged_receipts(TIMELINE, [unsent]) == TIMELINE


@pytest.mark.parametrize("sent_on", ["sms", "push"])
def test_a_receipt_held_for_a_send_s_answer_is_not_shown_before_the_journey_has_it(sent_on: str) -> None:
    """Within the receipt grace the log has the receipt and the journey has no ``sent`` line for that channel yet."""
    held = logged("payment_complete", "delivered", START + timedelta(minutes=2)).model_copy(
        update={"idempotency_key": f"wf:payment_complete:{sent_on}", "channel": sent_on, "final_channel": None}
    )
    assert with_logged_receipts(TIMELINE, [held]) == TIMELINE
