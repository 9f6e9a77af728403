"""A provider's contracted rate holds across every worker: a burst is spread out, not failed.

On the real dev server (the time-skipping server does not rate-limit task queues): the sandbox
gets its own send queue at 2 sends per second, two worker groups poll it, and ten journeys start
at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from durable_journeys.starter.assembly import build_worker, send_queues
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.stack import embedded_stack
from tests.factories import customer, order
from tests.helpers import eventually

RATE = 2.0
JOURNEYS = 10


async def test_a_burst_above_the_provider_rate_is_spread_out_across_workers(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, provider_sends_per_second={"sandbox": RATE})  # type: ignore[call-arg]
    task_queue = f"rate-{uuid.uuid4()}"
    assert send_queues(settings, task_queue) == {"sandbox": (f"{task_queue}.sandbox", RATE)}
    async with embedded_stack(
        dev_env.client,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'rate.db'}",
        settings=settings,
        task_queue=task_queue,
        care_segment="off",
    ) as stack:
        handles = []
        # A second worker process's worth: its own connection (one client may not poll a queue twice).
        other = await Client.connect(
            dev_env.client.service_client.config.target_host, data_converter=pydantic_data_converter
        )
        second = build_worker(other, stack.activities, task_queue=task_queue, queues=send_queues(settings, task_queue))
        async with stack.worker(), second:  # two worker groups, one limit
            for i in range(JOURNEYS):
                c = customer(f"010-1234-{5000 + i:04d}")
                handles.append(await stack.journeys.order_paid(order(c), c))

            async def all_sent() -> bool:
                return len(stack.sandbox.messages) >= JOURNEYS

            await eventually(all_sent, timeout=60)
            for handle in handles:
                await handle.terminate("test over")
            history = [e async for e in handles[0].fetch_history_events()]
        accepted = sorted(datetime.fromisoformat(m["accepted_at"]) for m in stack.sandbox.messages.values())
    assert len(accepted) == JOURNEYS  # every send went out: none failed for the limit
    assert not [a for a in stack.sandbox.attempts if a["error"]]
    # The run was not told the routes before its first send: the send on the journey's own queue
    # answered WrongSendQueue with them, and the journey sent again on the provider's queue.
    scheduled = [
        e.activity_task_scheduled_event_attributes.task_queue.name
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    failures = [
        e.activity_task_failed_event_attributes.failure.application_failure_info.type
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
    ]
    assert scheduled[:2] == [task_queue, f"{task_queue}.sandbox"] and failures == ["WrongSendQueue"]
    assert not [e for e in history if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]  # no route lookup
    span = (accepted[-1] - accepted[0]).total_seconds()
    # At 2/s, ten sends need at least 4 s once an initial burst of up to 2 is spent (margin for the
    # server's token bucket); unlimited they all go out within a fraction of a second.
    assert span >= (JOURNEYS - 2 * RATE) / RATE * 0.8, span
