"""A held send's receipt is told to its journey exactly once: in the send's answer, or by signal.

``Store.take_receipt`` (the send activity, engine 3) and ``Store.record_receipts`` (the webhook
app) race on one message row; whichever statement comes second sees the other's. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from durable_journeys.activities import MessageStatus, Store
from durable_journeys.providers import Channel, DeliveryReceipt, ReceiptStatus
from tests.helpers import message, migrated_store

KEY = "post-purchase:o-1:payment_complete:alimtalk"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with migrated_store(request.param, tmp_path) as s:
        yield s


async def sent(store: Store, key: str = KEY, *, held: bool = True) -> None:
    """A message the provider took, claimed as a send of an engine-3 journey does (held) or not."""
    await store.claim_message(**message(key), receipt_awaited=not held)
    await store.finish_message(key, MessageStatus.ACCEPTED, provider_message_id=f"m-{key}")


def receipt(key: str = KEY, status: ReceiptStatus = ReceiptStatus.DELIVERED) -> DeliveryReceipt:
    return DeliveryReceipt(
        provider="sandbox", provider_message_id=f"m-{key}", idempotency_key=key, status=status, error_code="E1"
    )


@pytest.mark.parametrize("status", [ReceiptStatus.DELIVERED, ReceiptStatus.FAILED])
async def test_a_receipt_that_came_first_is_in_the_answer_and_was_only_logged(
    store: Store, status: ReceiptStatus
) -> None:
    await sent(store)
    (record,) = await store.record_receipts([receipt(status=status)])
    assert record is not None and record.message.receipt_awaited is False  # the webhook app: logged
    taken = await store.take_receipt(KEY, grace=0)
    assert taken is not None
    told = taken.as_receipt()
    assert told is not None
    assert (told.idempotency_key, told.status, told.channel, told.step) == (
        KEY,
        status,
        Channel.ALIMTALK,
        "payment_complete",
    )
    assert told.error_code == "E1"
    # Handed over: the timeline does not read it from the log a second time.
    (msg,) = await store.messages()
    assert msg.receipt_awaited is True


async def test_no_receipt_within_the_grace_hands_it_to_the_webhook_app(store: Store) -> None:
    await sent(store)
    assert await store.take_receipt(KEY, grace=0.05) is None
    (record,) = await store.record_receipts([receipt()])
    assert record is not None and record.message.receipt_awaited is True  # the webhook app signals it
    # Asked again (a retried attempt): the receipt is there now, and nothing changes.
    again = await store.take_receipt(KEY, grace=0)
    assert again is not None and again.receipt_status == "delivered"


async def test_a_receipt_during_the_grace_comes_back_with_the_send(store: Store) -> None:
    await sent(store)

    async def later() -> None:
        await asyncio.sleep(0.15)
        await store.record_receipts([receipt()])

    task = asyncio.create_task(later())
    taken = await store.take_receipt(KEY, grace=5)
    await task
    assert taken is not None and taken.receipt_status == "delivered"


async def test_a_message_never_held_keeps_its_signal(store: Store) -> None:
    """A send of an engine-2 run: signalled as before; a later attempt of it may still read the receipt."""
    await sent(store, held=False)
    assert await store.take_receipt(KEY, grace=0) is None
    (record,) = await store.record_receipts([receipt()])
    assert record is not None and record.message.receipt_awaited is True


async def test_an_unknown_key_has_no_receipt(store: Store) -> None:
    assert await store.take_receipt("post-purchase:o-404:payment_complete:alimtalk", grace=0) is None


async def test_racing_the_webhook_app_every_receipt_is_told_exactly_once(store: Store) -> None:
    """Whatever the interleaving: in the answer xor signalled (the webhook app saw it awaited)."""
    rng = random.Random(7)
    keys = [f"post-purchase:o-{i}:payment_complete:alimtalk" for i in range(40)]
    for key in keys:
        await sent(store, key)

    # A third of the keys the receipt surely first, a third the send surely first, a third racing.
    def delays(i: int) -> tuple[float, float]:
        if i % 3 == 0:
            return 0.0, 0.1
        if i % 3 == 1:
            return 0.1, 0.0
        return rng.random() * 0.02, rng.random() * 0.02

    async def webhook(key: str, delay: float) -> bool:
        await asyncio.sleep(delay)
        (record,) = await store.record_receipts([receipt(key)])
        assert record is not None
        return record.message.receipt_awaited  # True: the webhook app signals the journey

    async def send(key: str, delay: float) -> bool:
        await asyncio.sleep(delay)
        return await store.take_receipt(key, grace=rng.choice([0, 0.005, 0.02])) is not None

    told = await asyncio.gather(
        *(asyncio.gather(send(k, delays(i)[1]), webhook(k, delays(i)[0])) for i, k in enumerate(keys))
    )
    assert all(in_answer != signalled for in_answer, signalled in told), told
    assert {in_answer for in_answer, _ in told} == {True, False}  # both paths were taken


@pytest.mark.parametrize(
    ("grace", "start_to_close", "schedule_to_close", "at_most"),
    [
        (3.0, timedelta(seconds=30), None, 3.0),  # production: the setting
        (3.0, timedelta(seconds=3), None, 1.5),  # a send_timeout as short as the grace: half of it
        (10.0, timedelta(seconds=30), timedelta(seconds=4), 2.0),  # the step's deadline is near
        (0.0, timedelta(seconds=30), None, 0.0),
    ],
)
def test_the_grace_never_outlasts_the_attempt(
    grace: float, start_to_close: timedelta, schedule_to_close: timedelta | None, at_most: float
) -> None:
    """A grace as long as the attempt would time out every send whose receipt never comes, for ever."""
    from temporalio.testing import ActivityEnvironment

    from durable_journeys.activities import SendActivities

    now = datetime.now(UTC)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        started_time=now,
        scheduled_time=now,
        start_to_close_timeout=start_to_close,
        schedule_to_close_timeout=schedule_to_close,
    )
    acts = SendActivities(None, None, None, receipt_grace=grace)  # type: ignore[arg-type]
    left = env.run(acts._grace_left)
    assert 0 <= left <= at_most
    assert left >= at_most - 0.5  # not cut for nothing
