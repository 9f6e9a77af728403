"""Crashes, restarts, outages and shutdowns: each message at most once, no step lost."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from durable_journeys.activities import MessageStatus
from durable_journeys.starter.devserver import start_dev_server
from durable_journeys.starter.serve import free_port
from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import Outcome
from tests.helpers import eventually
from tests.reliability.conftest import (
    assert_once_per_step,
    control,
    finish,
    payment_delivered,
    start_orders,
)

pytestmark = pytest.mark.reliability


async def test_worker_killed_mid_send_loses_nothing_and_sends_nothing_twice(
    http_stack: Stack, worker_process: type
) -> None:
    await control(http_stack, "latency", 1.0)  # every send takes a second: many are in flight
    first = worker_process()
    ids = await start_orders(http_stack, 12)

    async def in_flight() -> bool:
        return sum(m.status is MessageStatus.SENDING for m in await http_stack.store.messages()) >= 4

    await eventually(in_flight, timeout=30)
    first.kill()  # SIGKILL: no goodbye, activities die mid-call
    await control(http_stack, "latency", 0.2)
    async with http_stack.worker():
        await eventually(lambda: payment_delivered(http_stack, ids), timeout=60)
        results = await finish(http_stack, ids)
    assert all(r.outcome == "completed" for r in results)
    assert_once_per_step(http_stack)
    per_journey = {
        w: [m for m in http_stack.sandbox.messages.values() if m["reference"].startswith(w + ":")] for w in ids
    }
    assert all(len(ms) == 3 for ms in per_journey.values()), per_journey  # payment, review, sale
    log = await http_stack.store.messages()
    assert len(log) == len({m.idempotency_key for m in log}) == 36


async def test_sigterm_lets_in_flight_sends_finish(http_stack: Stack, worker_process: type) -> None:
    await control(http_stack, "latency", 1.5)
    worker = worker_process(graceful_seconds=20)
    ids = await start_orders(http_stack, 6)

    async def in_flight() -> bool:
        return sum(m.status is MessageStatus.SENDING for m in await http_stack.store.messages()) >= 3

    await eventually(in_flight, timeout=30)
    worker.signal(signal.SIGTERM)
    assert await worker.wait(30) == 0
    # every send that was in flight finished on its first attempt, before the worker left
    for workflow_id in ids:
        events = [e async for e in http_stack.journeys.client.get_workflow_handle(workflow_id).fetch_history_events()]
        started = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
        assert all(e.activity_task_started_event_attributes.attempt == 1 for e in started)
        assert not [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT]
    await control(http_stack, "latency", 0)
    async with http_stack.worker():
        await eventually(lambda: payment_delivered(http_stack, ids), timeout=60)
    assert_once_per_step(http_stack)


async def test_provider_outage_is_retried_into_one_message_each(http_stack: Stack) -> None:
    await control(http_stack, "outage", 4)
    async with http_stack.worker():
        ids = await start_orders(http_stack, 4)
        no_receipt = await start_orders(http_stack, 1, phone="010-0000-0002")
        await eventually(lambda: payment_delivered(http_stack, ids + no_receipt), timeout=60)
        timeline = await http_stack.journeys.timeline(no_receipt[0])
    assert_once_per_step(http_stack)
    # the …0002 customer still falls back to SMS after the receipt timeout, as designed
    assert [(e.channel.value if e.channel else None, e.outcome) for e in timeline if e.step == "payment_complete"] == [
        ("alimtalk", Outcome.SENT),
        ("alimtalk", Outcome.NO_RECEIPT),
        ("sms", Outcome.SENT),
        ("sms", Outcome.DELIVERED),
    ]
    for workflow_id in ids:
        events = [e async for e in http_stack.journeys.client.get_workflow_handle(workflow_id).fetch_history_events()]
        attempts = [
            e.activity_task_started_event_attributes.attempt
            for e in events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        ]
        assert max(attempts) > 1  # the outage was really hit and retried


async def test_server_restart_mid_journey(http_stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    db = str(tmp_path / "temporal.db")
    server = await start_dev_server(port=port, database_file=db)
    original = http_stack.journeys.client
    http_stack.journeys.client = server.client
    try:
        async with http_stack.worker():
            ids = await start_orders(http_stack, 3)
            await eventually(lambda: payment_delivered(http_stack, ids), timeout=30)
        await server.shutdown()  # the server goes away with journeys waiting for shipping

        server = await start_dev_server(port=port, database_file=db)
        http_stack.journeys.client = await Client.connect(f"127.0.0.1:{port}", data_converter=pydantic_data_converter)
        async with http_stack.worker():
            results = await finish(http_stack, ids)
    finally:
        http_stack.journeys.client = original
        await server.shutdown()
    assert [r.outcome for r in results] == ["completed"] * 3
    assert all(
        [e.step for e in r.timeline if e.outcome is Outcome.DELIVERED]
        == ["payment_complete", "review_request", "recent_buyer_sale"]
        for r in results
    )
    assert_once_per_step(http_stack)
