"""A run of an engine generation newer than the worker's (an app deployed before its workers).

Such a run must not take an older generation's path: a newer worker replaying it would then stop
at a workflow task it cannot replay. The worker fails its workflow tasks (Temporal retries them)
and sends nothing, until a worker that knows the generation takes it.

On the real dev server: the time-skipping server does not skip time again for any test after a
run whose workflow tasks failed.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from durable_journeys.starter.stack import embedded_stack
from durable_journeys.workflows import ENGINE_MEMO, PostPurchaseInput
from durable_journeys.workflows.constants import ENGINE
from durable_journeys.workflows.post_purchase import PostPurchaseJourney, post_purchase_id
from tests.factories import customer, order


@pytest.mark.parametrize("newer", [ENGINE + 1, ENGINE + 50])
async def test_a_run_of_a_newer_generation_waits_for_a_worker_that_knows_it(
    dev_env: WorkflowEnvironment, tmp_path: Path, newer: int
) -> None:
    c = customer()
    o = order(c)
    async with embedded_stack(
        dev_env.client,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}",
        task_queue=f"engine-{uuid.uuid4().hex[:8]}",
        care_segment="off",
    ) as stack:
        await stack.journeys.save_profile(c)
        async with stack.worker():
            handle = await stack.journeys.client.start_workflow(
                PostPurchaseJourney.run,
                PostPurchaseInput(order=o),
                id=f"{post_purchase_id(o.order_id)}-{uuid.uuid4().hex[:8]}",
                task_queue=stack.task_queue,
                memo={ENGINE_MEMO: newer},
            )
            failed = []
            for _ in range(200):
                events = [e async for e in handle.fetch_history_events()]
                failed = [e for e in events if e.event_type == HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
                if failed:
                    break
                await asyncio.sleep(0.05)
            description = await handle.describe()
            await handle.terminate("test over")
        sent = dict(stack.sandbox.messages)
    assert failed, "the workflow task did not fail"
    message = failed[0].workflow_task_failed_event_attributes.failure.message
    assert f"engine generation {newer}" in message and f"knows up to {ENGINE}" in message
    assert description.status is WorkflowExecutionStatus.RUNNING
    assert sent == {}
