"""No input, and no error inside a handler, fails a journey's workflow task (docs/architecture.md §8a).

Every signal (events and receipts under their readable names, any other name read as an event) records what it cannot use as
``ignored``; every Update handler (``skip_wait``, ``exit``, ``resend``) turns an error into a
failure of that call. The journey goes on: it answers queries, takes later Updates and ends.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner

from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import (
    ALL_WORKFLOWS,
    JourneyEvent,
    JourneyResult,
    Outcome,
    PostPurchaseInput,
    PostPurchaseJourney,
    post_purchase_id,
)
from tests.factories import customer, order

WHO = {"operator": "jimin", "reason": "checking the journey"}


@workflow.defn(name="FragilePostPurchase")
class FragileJourney(PostPurchaseJourney):
    """The post-purchase journey with a bug in each handler's own code."""

    @workflow.run
    async def run(self, inp: PostPurchaseInput) -> JourneyResult:
        return await super().run(inp)

    def on_event_received(self, event: JourneyEvent) -> None:
        raise RuntimeError("a bug in the journey's event hook")

    def _note_operator(self, update: str, action: Any) -> None:
        raise ValueError("a model error inside an Update handler")


async def task_failures(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.event_type == HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)


async def test_an_error_inside_any_handler_fails_only_that_call(env: WorkflowEnvironment, stack: Stack) -> None:
    c = customer()
    o = order(c)
    await stack.journeys.save_profile(c)
    client = stack.journeys.client
    # This module imports test helpers that are not deterministic: the fragile journey runs unsandboxed.
    async with stack.worker(workflows=[*ALL_WORKFLOWS, FragileJourney], workflow_runner=UnsandboxedWorkflowRunner()):
        handle = await client.start_workflow(
            FragileJourney.run,
            PostPurchaseInput(order=o),
            id=f"fragile:{o.order_id}",
            task_queue=stack.task_queue,
        )
        await env.sleep(timedelta(minutes=2))
        failures = []
        for name, args in (
            ("skip_wait", WHO),
            ("exit", WHO),
            ("resend", {**WHO, "step": "payment_complete"}),
        ):
            with pytest.raises(WorkflowUpdateFailedError) as failed:
                await handle.execute_update(name, args)
            failures.append(str(failed.value.cause))
        await handle.signal("order.shipped", JourneyEvent(type="order.shipped"))
        await handle.signal("event", JourneyEvent(type="order.delivered"))
        await env.sleep(timedelta(minutes=1))
        timeline = await stack.journeys.timeline(handle.id)
        failed_tasks = await task_failures(handle)
        await handle.terminate("test over")
    assert failures == [
        "skip_wait failed: ValueError",
        "exit failed: ValueError",
        "resend failed: ValueError",
    ]
    ignored = [(e.step, e.detail) for e in timeline if e.outcome is Outcome.IGNORED]
    assert ignored == [
        ("order.shipped", "unusable event (RuntimeError)"),
        ("order.delivered", "unusable event (RuntimeError)"),
    ]
    assert failed_tasks == 0


@pytest.mark.parametrize(
    ("update", "args"),
    [
        ("exit", {}),
        ("exit", {"operator": "jimin"}),
        ("exit", {**WHO, "extra": 1}),
        ("skip_wait", {"operator": 5, "reason": []}),
        ("resend", WHO),  # no step
        ("resend", {**WHO, "step": "payment_complete", "channel": "pigeon"}),
        ("resend", {**WHO, "step": "x" * 101}),
        ("resend", "not an object"),
        ("no_such_update", WHO),
    ],
)
async def test_malformed_updates_are_refused_and_the_journey_goes_on(
    env: WorkflowEnvironment, stack: Stack, update: str, args: Any
) -> None:
    o = order(c := customer())
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c, settings={"review_hours_kst": None})
        await env.sleep(timedelta(minutes=2))
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(update, args)
        answer = await stack.journeys.exit_journey(post_purchase_id(o.order_id), **WHO)
        result = await handle.result()
        failed_tasks = await task_failures(handle)
    assert answer.startswith("exiting") and result.outcome == "exited:operator"
    assert failed_tasks == 0


@pytest.mark.parametrize(
    ("signal", "payload"),
    [
        ("event", {"type": "order.teleported"}),
        ("event", {"type": "order.shipped", "data": "not an object"}),
        ("event", ["a", "list"]),
        ("receipt", {"status": "maybe"}),
        ("receipt", {"provider": "sandbox", "status": "delivered", "idempotency_key": 7}),
        ("order.shipped", {"type": "order.shipped", "data": {"carrier": {"deep": ["x"] * 3}}}),
        ("receipt sms delivered", {"nothing": "useful"}),
        ("anything at all", None),
    ],
)
async def test_malformed_signals_are_ignored_and_the_journey_goes_on(
    env: WorkflowEnvironment, stack: Stack, signal: str, payload: Any
) -> None:
    o = order(c := customer())
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c, settings={"review_hours_kst": None})
        await env.sleep(timedelta(minutes=2))
        await handle.signal(signal, payload)
        await stack.journeys.order_shipped(o.order_id)
        await env.sleep(timedelta(minutes=5))
        timeline = await stack.journeys.timeline(handle.id)
        await stack.journeys.exit_journey(handle.id, **WHO)
        failed_tasks = await task_failures(handle)
    sent = [(e.step, e.outcome) for e in timeline if e.step == "shipping_started" and e.channel]
    assert (sent[0][1], sent[-1][1]) == (Outcome.SENT, Outcome.DELIVERED)  # the journey went on
    assert failed_tasks == 0
