"""The ``journeys`` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import typer

from providers import JourneysError

app = typer.Typer(help="Durable Journeys: customer-journey workflows on Temporal.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.")
app.add_typer(db_app, name="db")


def _run(coro: Coroutine[Any, Any, int | None]) -> int:
    """Run a command; SIGINT and SIGTERM cancel it, so its cleanup (a dev server it started,
    open connections) runs instead of leaving orphans behind."""

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await coro or 0
        except asyncio.CancelledError:
            return 130

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130


def _settings() -> Any:
    from worker import Settings, setup_logging

    settings = Settings()
    setup_logging(settings)
    return settings


@app.command()
def demo(
    keep: bool = typer.Option(False, "--keep", help="Leave the server and UI running until Ctrl-C."),
    ui_port: int = typer.Option(8233, help="Port of the Temporal UI."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every log line."),
) -> None:
    """Run the three reference journeys for sample customers on the embedded dev server."""
    from activities.logs import configure_logging
    from starter.demo import run_demo

    configure_logging(json=False, level="INFO" if verbose else "WARNING")
    raise typer.Exit(_run(run_demo(keep=keep, ui_port=ui_port)))


@app.command()
def worker() -> None:
    """Run a worker (settings from JOURNEYS_* environment variables)."""
    from worker import run_worker

    raise typer.Exit(_run(run_worker(_settings())))


@app.command()
def webhooks(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the webhook app (provider receipts, app events, health)."""
    import uvicorn

    from starter.journeys import Journeys
    from starter.webhooks import create_webhook_app
    from worker import build_providers

    from worker import WEBHOOK_SECRETS

    settings = _settings()
    settings.require_secrets(*WEBHOOK_SECRETS)

    async def serve() -> None:
        journeys = await Journeys.connect(settings)
        web = create_webhook_app(
            journeys, build_providers(settings, journeys.store), api_key=settings.api_key.get_secret_value(),
            inbox_token_secret=settings.inbox_token_secret.get_secret_value(),
            max_body_bytes=settings.webhook_max_body_bytes, docs=settings.docs_enabled,
        )
        await uvicorn.Server(uvicorn.Config(web, host=host, port=port, log_config=None, lifespan="off")).serve()
        await journeys.close()

    raise typer.Exit(_run(serve()))


@app.command()
def sandbox(
    host: str = "127.0.0.1",
    port: int = 8600,
    webhook_url: str = typer.Option("http://127.0.0.1:8000/webhooks/sandbox", help="Where receipts go."),
) -> None:
    """Serve the sandbox provider alone."""
    import uvicorn

    from providers.sandbox import SandboxConfig, create_sandbox_app
    from worker import SANDBOX_SECRETS

    settings = _settings()
    settings.require_secrets(*SANDBOX_SECRETS)
    sandbox_app = create_sandbox_app(SandboxConfig(
        api_key=settings.sandbox_api_key.get_secret_value(),
        webhook_secret=settings.sandbox_webhook_secret.get_secret_value(),
        webhook_url=webhook_url,
        docs=settings.docs_enabled,
    ))
    uvicorn.run(sandbox_app, host=host, port=port, log_config=None, lifespan="off")


@app.command()
def dev(ui_port: int = 8233, port: int = 7233, sandbox_port: int = 8600, webhook_port: int = 8000) -> None:
    """Run the dev server, sandbox, webhook app and a worker together until Ctrl-C."""
    from starter.dev import run_dev
    from worker import dev_settings

    settings = dev_settings(_settings())
    raise typer.Exit(_run(run_dev(settings, port=port, ui_port=ui_port,
                                  sandbox_port=sandbox_port, webhook_port=webhook_port)))


@app.command()
def setup() -> None:
    """Register the journeys' search attributes on the configured namespace (idempotent)."""
    from starter.setup import register_search_attributes
    from worker import connect_client

    settings = _settings()

    async def register() -> None:
        added = await register_search_attributes(await connect_client(settings))
        typer.echo(f"added: {', '.join(added)}" if added else "search attributes already registered")

    raise typer.Exit(_run(register()))


@app.command()
def bench(n: int = typer.Argument(500, help="Journeys per run.")) -> None:
    """Run the benchmark (``python -m bench N`` in a source checkout; results in bench/README.md)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / "__main__.py").is_file():
        typer.echo("the benchmark lives in the source tree (bench/): run it from a git checkout", err=True)
        raise typer.Exit(2)
    raise typer.Exit(subprocess.call([sys.executable, "-m", "bench", str(n)], cwd=root))


@app.command()
def inspect(workflow_id: str) -> None:
    """Print a journey's timeline."""
    from starter.demo import format_timeline
    from starter.journeys import Journeys

    settings = _settings()

    async def show() -> None:
        journeys = await Journeys.connect(settings)
        try:
            for line in format_timeline(await journeys.timeline(workflow_id)):
                typer.echo(line)
        finally:
            await journeys.close()

    raise typer.Exit(_run(show()))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the store's tables."""
    from worker import build_store

    settings = _settings()

    async def upgrade() -> None:
        store = build_store(settings)
        await store.migrate()
        await store.close()

    raise typer.Exit(_run(upgrade()))


def main() -> None:
    """Console entry point.

    Leaves with ``os._exit`` once the event loop is closed: the Temporal SDK can crash at
    interpreter exit (temporalio/sdk-python#300).
    """
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except JourneysError as exc:  # a usage or configuration mistake: one line, no traceback
        typer.echo(f"journeys: {exc}", err=True)
        code = 2
    except Exception as exc:  # the CLI's last line of defence: report, then leave with 1
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            code = exc.exit_code
        else:
            logging.getLogger("journeys").exception("command failed")
            code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code if isinstance(code, int) else 0)
if __name__ == "__main__":
    main()
