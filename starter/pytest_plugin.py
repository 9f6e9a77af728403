"""The pytest plugin of the testing kit (entry point ``journeys``): fixtures ``journey_env`` and ``journey_kit``.

See :mod:`starter.testing`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from starter.testing import JourneyKit, KitSetupError, start_test_environment
from starter.testing import journey_kit as _journey_kit


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def journey_env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping test server for the session, search attributes registered."""
    try:
        env = await start_test_environment()
    except KitSetupError as exc:
        pytest.fail(f"your test setup is wrong: {exc}", pytrace=False)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(loop_scope="session")
async def journey_kit(journey_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[JourneyKit]:
    """A fresh stack for this test on the session's server; its journeys are terminated after it."""
    async with _journey_kit(journey_env, tmp_path / "journeys.db") as kit:
        yield kit
