"""A journey whose customer the worker's store does not know is visibly wrong, not quiet.

The trap: the app's process writes the customer to one database and the worker reads another
(a relative SQLite path, another ``JOURNEYS_DATABASE_URL``). Every send is skipped as
``unknown_customer``; the journey must say so where operators look (``JourneyStage``, current
details, the timeline, a warning), and recover once the profile reaches the worker's store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import UNKNOWN_CUSTOMER, Channel, Store
from durable_journeys.starter import Journeys
from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import Outcome
from tests.conftest import terminate_journeys
from tests.factories import customer, order
from tests.workflows.test_post_purchase import sandbox_sends, stage_of


@pytest.fixture
async def elsewhere(stack: Stack, tmp_path: Path) -> AsyncIterator[Journeys]:
    """The app's facade, writing customers to a database the worker does not read."""
    other = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    await other.migrate()
    app = Journeys(stack.journeys.client, other, task_queue=stack.journeys.task_queue, care_segment="off")
    yield app
    # Its journeys are known to its own store only: end them too, or their timers, left without a
    # worker on the shared time-skipping server, stall later tests' time skipping.
    await terminate_journeys(SimpleNamespace(store=other, journeys=app))  # type: ignore[arg-type]
    await other.close()


async def paid_an_hour_ago(env: WorkflowEnvironment, app: Journeys, c: Any, o: Any) -> Any:
    """The order paid through the app's facade (another database), an hour of journey time ago."""
    handle = await app.order_paid(o, c)
    await env.sleep(timedelta(hours=1))
    return handle


@pytest.mark.parametrize("phone", ["010-1234-5678", "010-0000-0002"])  # AlimTalk would deliver / never answer
async def test_an_unknown_customer_shows_in_the_stage_and_nothing_is_sent(
    env: WorkflowEnvironment, stack: Stack, elsewhere: Journeys, phone: str
) -> None:
    c = customer(phone)
    async with stack.worker():
        handle = await elsewhere.order_paid(order(c), c)
        await env.sleep(timedelta(hours=1))
        timeline = await stack.journeys.timeline(handle.id)
        assert await stage_of(handle) == UNKNOWN_CUSTOMER
        metadata = await handle.query("__temporal_workflow_metadata")
        assert metadata.current_details == "post-purchase: waiting_for_shipping; customer unknown to the store"

    assert sandbox_sends(stack) == []
    payment = [(e.outcome, e.channel, e.detail) for e in timeline if e.step == "payment_complete"]
    # One skipped send, not one per channel: no other channel can reach an unknown customer.
    assert payment == [
        (Outcome.SKIPPED, Channel.ALIMTALK, UNKNOWN_CUSTOMER),
        (Outcome.NOT_DELIVERED, None, "the store has no profile for this customer"),
    ]


async def test_the_stage_recovers_when_the_profile_reaches_the_worker_store(
    env: WorkflowEnvironment, stack: Stack, elsewhere: Journeys
) -> None:
    c = customer("010-1234-5678")
    o = order(c)
    async with stack.worker():
        handle = await paid_an_hour_ago(env, elsewhere, c, o)
        assert await stage_of(handle) == UNKNOWN_CUSTOMER
        await stack.store.upsert_customer(c)  # the fix: the worker's store has the profile now
        await stack.journeys.order_shipped(o.order_id)
        await env.sleep(timedelta(hours=1))
        assert await stage_of(handle) == "waiting_for_delivery"
    assert sandbox_sends(stack) == [("shipping_started", "alimtalk")]


async def test_an_unknown_customer_journey_ends_with_that_stage(
    env: WorkflowEnvironment, stack: Stack, elsewhere: Journeys
) -> None:
    c = customer("010-1234-5678")
    o = order(c)
    async with stack.worker():
        handle = await paid_an_hour_ago(env, elsewhere, c, o)
        await stack.journeys.order_delivered(o.order_id)
        result = await handle.result()
    assert await stage_of(handle) == UNKNOWN_CUSTOMER
    assert result.outcome == "completed"
    assert sandbox_sends(stack) == []
    skipped = {e.step for e in result.timeline if e.outcome is Outcome.SKIPPED and e.detail == UNKNOWN_CUSTOMER}
    assert skipped == {"payment_complete", "review_request", "recent_buyer_sale"}
