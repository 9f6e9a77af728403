"""``journeys dev``: a whole local installation for app developers, until Ctrl-C."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from starter.binaries import find_binary
from starter.stack import embedded_stack
from workflows import SEARCH_ATTRIBUTES


async def run_dev(settings: Any, *, port: int, ui_port: int, sandbox_port: int, webhook_port: int) -> int:
    """Serve everything on fixed local ports; the dev server keeps its state in ``temporal.db``."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        port=port,
        ui=True,
        ui_port=ui_port,
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_database_filename=str(Path("temporal.db").absolute()),
        dev_server_log_level="error",
    )
    try:
        async with embedded_stack(
            env.client, database_url=settings.database_url, settings=settings, http=True,
            task_queue=settings.task_queue, sandbox_port=sandbox_port, webhook_port=webhook_port,
        ) as stack:
            async with stack.worker():
                typer.echo(f"Temporal: localhost:{port}   UI: http://localhost:{ui_port}")
                typer.echo(f"sandbox: {stack.sandbox_url}   webhooks: {stack.webhook_url}   Ctrl-C stops.")
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    pass
    finally:
        await env.shutdown()
    return 0
