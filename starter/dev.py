"""``journeys dev``: a whole local installation for app developers, until Ctrl-C."""

from __future__ import annotations

import typer

from starter.devserver import start_dev_server, until_interrupted
from starter.stack import embedded_stack
from worker import Settings, without_password


def secrets_help(settings: Settings) -> list[str]:
    """How to use this run's development secrets (random per run unless set in the environment)."""
    return [
        "Development secrets for this run (random unless set; a production process needs its own):",
        f"  JOURNEYS_API_KEY={settings.api_key.get_secret_value()}",
        f"  JOURNEYS_INBOX_TOKEN_SECRET={settings.inbox_token_secret.get_secret_value()}",
        f"  JOURNEYS_SANDBOX_API_KEY={settings.sandbox_api_key.get_secret_value()}",
        f"  JOURNEYS_SANDBOX_WEBHOOK_SECRET={settings.sandbox_webhook_secret.get_secret_value()}",
        "  /events takes 'Authorization: Bearer $JOURNEYS_API_KEY'; /inbox/{customer_id} takes a token from",
        "  Journeys.inbox_token(customer_id) built with the same JOURNEYS_INBOX_TOKEN_SECRET.",
    ]


async def run_dev(settings: Settings, *, port: int, ui_port: int, sandbox_port: int, webhook_port: int) -> int:
    """Serve everything on fixed local ports; the dev server keeps its state in ``temporal.db`` in the data dir."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = await start_dev_server(port=port, ui_port=ui_port, database_file=str(settings.data_dir / "temporal.db"))
    try:
        async with embedded_stack(
            env.client,
            database_url=settings.database_url,
            settings=settings,
            http=True,
            task_queue=settings.task_queue,
            sandbox_port=sandbox_port,
            webhook_port=webhook_port,
            consent_notices=settings.consent_notices,
        ) as stack:
            async with stack.worker():
                typer.echo(f"Temporal: localhost:{port}   UI: http://localhost:{ui_port}")
                typer.echo(f"sandbox: {stack.sandbox_url}   webhooks: {stack.webhook_url}   Ctrl-C stops.")
                typer.echo(
                    f"data: {settings.data_dir} (store {without_password(settings.database_url)}, "
                    f"Temporal state temporal.db); other commands use the same by default"
                )
                for line in secrets_help(stack.settings):
                    typer.echo(line)
                await until_interrupted()
    finally:
        await env.shutdown()
    return 0
