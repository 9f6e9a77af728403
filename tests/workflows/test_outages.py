"""Outages delay steps, they never drop them; an unknown outcome is never taken for a failure.

On the time-skipping server: hours of journey time pass in seconds.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from durable_journeys.activities import (
    OUTCOME_UNKNOWN,
    Channel,
    OutcomeStatus,
    SendActivities,
    SendRequest,
    default_templates,
)
from durable_journeys.providers import (
    DeliveryReceipt,
    ErrorClass,
    InvalidReceipt,
    OutboundMessage,
    ProviderRegistry,
    ProviderUnavailable,
    SendResult,
    SendStatus,
)
from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import Outcome, PostPurchaseSettings, TimelineEntry
from tests.activities.test_send import request
from tests.factories import customer, order

DEADLINE = timedelta(hours=6)
SETTINGS = PostPurchaseSettings(send_deadline=DEADLINE, unknown_window=timedelta(hours=3), review_hours_kst=None)


class StoreOutage:
    """The worker's store, switched off and on: every call raises while it is down."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.down = False

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database is down"))
            return await real(*args, **kwargs)

        return call


class AnswerLost:
    """The sandbox, but every answer to a send is lost after the request was written, and lookups
    fail while ``lookups_fail``: the send's outcome is unknown."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.lookups_fail = True

    async def send(self, msg: OutboundMessage) -> SendResult:
        await self.inner.send(msg)
        return SendResult(status=SendStatus.UNKNOWN, error_class=ErrorClass.UNKNOWN, error_code="ReadTimeout")

    async def lookup(self, idempotency_key: str) -> SendResult | None:
        if self.lookups_fail:
            raise ProviderUnavailable("lookup timed out")
        return await self.inner.lookup(idempotency_key)

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> list[DeliveryReceipt | InvalidReceipt]:
        return self.inner.parse_webhook(headers, body)


def activities_with(stack: Stack, *, store: Any = None, provider: Any = None) -> SendActivities:
    sandbox = provider or stack.providers.get("sandbox")
    inbox = stack.providers.get("inbox")
    registry = ProviderRegistry(
        {sandbox.name: sandbox, "inbox": inbox}, routes={Channel.IN_APP: "inbox"}, default=sandbox.name
    )
    return SendActivities(store or stack.store, registry, default_templates())


def worker_for(stack: Stack, acts: SendActivities) -> Worker:
    from durable_journeys.starter.assembly import build_worker

    return build_worker(stack.journeys.client, acts, task_queue=stack.task_queue)


async def paid_with(
    env: WorkflowEnvironment, stack: Stack, acts: SendActivities, phone: str, hours: int
) -> tuple[str, list[TimelineEntry]]:
    """Pay an order for a customer with ``phone``, run ``hours`` of journey time on ``acts``."""
    c = customer(phone)
    async with worker_for(stack, acts):
        handle = await stack.journeys.order_paid(order(c), c, settings=SETTINGS)
        await env.sleep(timedelta(hours=hours))
        return handle.id, await stack.journeys.timeline(handle.id)


def steps(timeline: list[TimelineEntry], step: str) -> list[tuple[Channel | None, Outcome]]:
    return [(e.channel, e.outcome) for e in timeline if e.step == step]


def alimtalks(stack: Stack) -> list[dict[str, Any]]:
    return [m for m in stack.sandbox.messages.values() if m["channel"] == "alimtalk"]


async def test_store_down_for_two_hours_delays_the_step_and_sends_once(env: WorkflowEnvironment, stack: Stack) -> None:
    outage = StoreOutage(stack.store)
    c = customer()
    o = order(c)
    async with worker_for(stack, activities_with(stack, store=outage)):
        outage.down = True
        handle = await stack.journeys.order_paid(o, c, settings=SETTINGS)
        await env.sleep(timedelta(hours=2))
        during = await stack.journeys.timeline(handle.id)
        sent_during = len(stack.sandbox.messages)
        outage.down = False
        await env.sleep(timedelta(hours=1))
        after = await stack.journeys.timeline(handle.id)
    assert sent_during == 0
    assert steps(during, "payment_complete") == [(Channel.ALIMTALK, Outcome.WAITING)]
    assert steps(after, "payment_complete") == [
        (Channel.ALIMTALK, Outcome.WAITING),
        (Channel.ALIMTALK, Outcome.SENT),
        (Channel.ALIMTALK, Outcome.DELIVERED),
    ]
    delivered = next(e for e in after if e.outcome is Outcome.DELIVERED)
    assert timedelta(hours=2) <= delivered.elapsed < timedelta(hours=3)  # sent once the store was back
    assert len(alimtalks(stack)) == 1 and len(stack.sandbox.messages) == 1  # no SMS, nothing twice


async def test_a_provider_outage_past_the_deadline_expires_the_step_and_the_journey_goes_on(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    key = {"Authorization": f"Bearer {stack.settings.sandbox_api_key.get_secret_value()}"}
    c = customer()
    o = order(c)
    async with (
        stack.worker(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.sandbox_app), base_url="http://s") as control,
    ):
        (await control.post("/v1/control/outage", json={"seconds": 3600}, headers=key)).raise_for_status()
        handle = await stack.journeys.order_paid(o, c, settings=SETTINGS)
        # Hour by hour until the step gives up: under load the server may reach it rounds late (each
        # hour holds some sixty retried attempts, run in real time), so it gets a day and more.
        for _ in range(36):
            await env.sleep(timedelta(hours=1))
            if any(e.outcome is Outcome.EXPIRED for e in await stack.journeys.timeline(handle.id)):
                break
        (await control.post("/v1/control/outage", json={"seconds": 0}, headers=key)).raise_for_status()
        await stack.journeys.order_shipped(o.order_id)
        await env.sleep(timedelta(hours=1))
        timeline = await stack.journeys.timeline(handle.id)
    assert steps(timeline, "payment_complete") == [
        (Channel.ALIMTALK, Outcome.WAITING),
        (Channel.ALIMTALK, Outcome.EXPIRED),
    ]
    expired = next(e for e in timeline if e.outcome is Outcome.EXPIRED)
    assert DEADLINE <= expired.elapsed < DEADLINE + timedelta(hours=1)
    assert [(e.channel, e.outcome) for e in timeline if e.step == "shipping_started"] == [
        (Channel.ALIMTALK, Outcome.SENT),
        (Channel.ALIMTALK, Outcome.DELIVERED),
    ]
    assert [m["custom_fields"]["step"] for m in stack.sandbox.messages.values()] == ["shipping_started"]


async def test_an_unknown_outcome_never_falls_back_and_ends_unknown(env: WorkflowEnvironment, stack: Stack) -> None:
    """The AlimTalk reached the provider but its answer was lost and lookups keep failing: no SMS."""
    lost = AnswerLost(stack.providers.get("sandbox"))
    # ...0002: AlimTalk accepted, no receipt ever: nothing settles it
    workflow_id, timeline = await paid_with(env, stack, activities_with(stack, provider=lost), "010-0000-0002", 4)
    assert steps(timeline, "payment_complete") == [
        (Channel.ALIMTALK, Outcome.WAITING),
        (Channel.ALIMTALK, Outcome.UNKNOWN),
    ]
    unknown = next(e for e in timeline if e.outcome is Outcome.UNKNOWN)
    assert timedelta(hours=3) <= unknown.elapsed < timedelta(hours=4)
    assert [m["channel"] for m in stack.sandbox.messages.values()] == ["alimtalk"]  # sent once, no SMS
    [logged] = await stack.store.messages(workflow_id=workflow_id)
    assert logged.status == "unknown"


async def test_a_receipt_settles_an_unknown_outcome(env: WorkflowEnvironment, stack: Stack) -> None:
    lost = AnswerLost(stack.providers.get("sandbox"))
    # delivered: the sandbox's receipt reaches the journey though the answer was lost
    _, timeline = await paid_with(env, stack, activities_with(stack, provider=lost), "010-1234-5678", 1)
    assert steps(timeline, "payment_complete")[-1] == (Channel.ALIMTALK, Outcome.DELIVERED)
    assert Outcome.UNKNOWN not in [e.outcome for e in timeline]
    assert [m["channel"] for m in stack.sandbox.messages.values()] == ["alimtalk"]


@pytest.mark.parametrize(
    "change",
    [
        {"email": None},
        {"phone": None},
        {"unsubscribed": True, "marketing_consent": {}},
    ],
    ids=["email-removed", "phone-removed", "unsubscribed"],
)
async def test_a_retried_attempt_reconciles_before_it_reloads_the_profile(stack: Stack, change: dict[str, Any]) -> None:
    """Attempt 1 reached the provider but its answer was lost; the profile changed before attempt 2."""
    lost = AnswerLost(stack.providers.get("sandbox"))
    acts = activities_with(stack, provider=lost)
    c = customer(push_tokens=["t"])
    await stack.store.upsert_customer(c)
    req: SendRequest = request(
        c.customer_id,
        purpose="advertising",
        channel=Channel.SMS,
        template="recent_buyer_sale",
        variables={"sale_url": "https://shop.example/sale"},
    )
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as err:
        await env.run(acts.send_message, req)
    assert err.value.type == OUTCOME_UNKNOWN and not err.value.non_retryable
    await stack.store.upsert_customer(c.model_copy(update=change))
    lost.lookups_fail = False
    env.info = dataclasses.replace(env.info, attempt=2)
    outcome = await env.run(acts.send_message, req)
    assert outcome.status is OutcomeStatus.ACCEPTED and outcome.replayed is False
    assert len(stack.sandbox.messages) == 1
    [logged] = await stack.store.messages()
    assert logged.status == "accepted"
