"""``journeys dev``: a whole local installation for app developers, until Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from starter.devserver import start_dev_server, until_interrupted
from starter.stack import embedded_stack


async def run_dev(settings: Any, *, port: int, ui_port: int, sandbox_port: int, webhook_port: int) -> int:
    """Serve everything on fixed local ports; the dev server keeps its state in ``temporal.db``."""
    env = await start_dev_server(port=port, ui_port=ui_port, database_file=str(Path("temporal.db").absolute()))
    try:
        async with embedded_stack(
            env.client, database_url=settings.database_url, settings=settings, http=True,
            task_queue=settings.task_queue, sandbox_port=sandbox_port, webhook_port=webhook_port,
        ) as stack:
            async with stack.worker():
                typer.echo(f"Temporal: localhost:{port}   UI: http://localhost:{ui_port}")
                typer.echo(f"sandbox: {stack.sandbox_url}   webhooks: {stack.webhook_url}   Ctrl-C stops.")
                await until_interrupted()
    finally:
        await env.shutdown()
    return 0
