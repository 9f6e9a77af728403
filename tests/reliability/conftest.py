"""Fault tests: the real dev server, the sandbox and webhook app over HTTP, workers in subprocesses."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from durable_journeys.providers.sandbox import ReceiptTiming
from durable_journeys.starter.stack import Stack, embedded_stack
from durable_journeys.workflows import JourneyResult, Outcome, PostPurchaseSettings
from tests.factories import customer, order

pytestmark = pytest.mark.reliability

FAST = PostPurchaseSettings(
    receipt_timeout=timedelta(seconds=4),
    send_timeout=timedelta(seconds=3),
    review_delay=timedelta(seconds=1),
    sale_after_delivery=timedelta(seconds=2),
    give_up_after=timedelta(minutes=5),
    review_hours_kst=None,  # real time: the test must not depend on the hour in Korea
)


@pytest.fixture
async def http_stack(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Stack]:
    async with embedded_stack(
        dev_env.client,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'journeys.db'}",
        http=True,
        receipt_timing=ReceiptTiming.AFTER_RESPONSE,
        receipt_delay=timedelta(milliseconds=50),
        post_purchase=FAST,
        task_queue=f"rel-{uuid.uuid4()}",
        care_segment="off",
    ) as s:
        yield s


class WorkerProcess:
    """``journeys worker`` in a subprocess, configured like production through JOURNEYS_* variables."""

    def __init__(self, stack: Stack, address: str, *, graceful_seconds: float = 0) -> None:
        env = {
            **os.environ,
            "JOURNEYS_TEMPORAL_ADDRESS": address,
            "JOURNEYS_DATABASE_URL": str(stack.store.engine.url),
            "JOURNEYS_SANDBOX_URL": stack.sandbox_url,
            "JOURNEYS_SANDBOX_API_KEY": stack.settings.sandbox_api_key.get_secret_value(),
            "JOURNEYS_TASK_QUEUE": stack.task_queue,
            "JOURNEYS_GRACEFUL_SHUTDOWN_SECONDS": str(graceful_seconds),
            "JOURNEYS_LOG_FORMAT": "json",
            "JOURNEYS_LOG_LEVEL": "WARNING",
        }
        self.proc = subprocess.Popen([sys.executable, "-m", "durable_journeys.starter.cli", "worker"], env=env)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30) -> int:
        for _ in range(int(timeout * 20)):
            if self.proc.poll() is not None:
                return self.proc.returncode
            await asyncio.sleep(0.05)
        self.proc.kill()
        raise AssertionError("worker did not exit in time")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def worker_process(http_stack: Stack, dev_env: WorkflowEnvironment) -> Iterator[type]:
    started: list[WorkerProcess] = []
    address = dev_env.client.service_client.config.target_host

    def launch(graceful_seconds: float = 0) -> WorkerProcess:
        w = WorkerProcess(http_stack, address, graceful_seconds=graceful_seconds)
        started.append(w)
        return w

    yield launch  # type: ignore[misc]
    for w in started:
        w.kill()


async def control(stack: Stack, what: str, seconds: float) -> None:
    async with httpx.AsyncClient(base_url=stack.sandbox_url) as http:
        key = stack.settings.sandbox_api_key.get_secret_value()
        resp = await http.post(
            f"/v1/control/{what}", json={"seconds": seconds}, headers={"Authorization": f"Bearer {key}"}
        )
        resp.raise_for_status()


async def start_orders(stack: Stack, n: int, phone: str = "010-1234-5678") -> list[str]:
    ids = []
    for _ in range(n):
        c = customer(phone)
        o = order(c)
        ids.append((await stack.journeys.order_paid(o, c)).id)
    return ids


async def payment_delivered(stack: Stack, workflow_ids: list[str]) -> bool:
    for workflow_id in workflow_ids:
        timeline = await stack.journeys.timeline(workflow_id)
        if not any(e.step == "payment_complete" and e.outcome is Outcome.DELIVERED for e in timeline):
            return False
    return True


def assert_once_per_step(stack: Stack) -> None:
    """Each idempotency key reached the provider once, and no step went out on two channels."""
    keys = [a["key"] for a in stack.sandbox.attempts if a["error"] is None]
    assert len(keys) == len(set(keys)), "a message was sent twice"
    delivered_steps = [
        m["reference"].rsplit(":", 1)[0] for m in stack.sandbox.messages.values() if m.get("receipt") == "delivered"
    ]
    assert len(delivered_steps) == len(set(delivered_steps)), "one step delivered on two channels"


async def finish(stack: Stack, workflow_ids: list[str]) -> list[JourneyResult]:
    for workflow_id in workflow_ids:
        await stack.journeys.order_delivered(workflow_id.split(":", 1)[1])
    return [
        await stack.journeys.client.get_workflow_handle(w, result_type=JourneyResult).result() for w in workflow_ids
    ]
