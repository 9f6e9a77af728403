"""What the ``journeys`` commands share: running a command, its settings, what it reads, its usage errors."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any

import typer

from durable_journeys.starter.settings import Settings, load_settings


def plain_typer(help_text: str, **kwargs: Any) -> typer.Typer:
    """A command group with plain help (no rich panels showing "<bool>" on flags) and no pretty tracebacks.

    Usage and configuration mistakes are one line (``cli.main``); anything else is a bug, logged as one.
    """
    return typer.Typer(help=help_text, rich_markup_mode=None, pretty_exceptions_enable=False, **kwargs)


def usage_errors() -> tuple[type[BaseException], ...]:
    """The exception classes of a command-line usage mistake.

    Typer's own (it vendors click from 0.2x on) and click's (older typer).
    """
    found: list[type[BaseException]] = [typer.TyperException] if hasattr(typer, "TyperException") else []
    try:
        import click
    except ImportError:
        pass
    else:
        found.append(click.ClickException)
    return tuple(found)


USAGE_ERRORS = usage_errors()


def run_command(coro: Coroutine[Any, Any, int | None]) -> int:
    """Run a command; SIGINT and SIGTERM cancel it.

    So its cleanup (a dev server it started, open connections) runs instead of leaving orphans.
    """

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


def command_settings() -> Settings:
    """The settings from the environment, with logging set up as they say."""
    from durable_journeys.starter.assembly import setup_logging

    settings = load_settings()
    setup_logging(settings)
    return settings


# What each command reads from the environment (also from a .env file in the current directory).
CONNECT = ", ".join(
    [f"JOURNEYS_{name.upper()}" for name in Settings.model_fields if name.startswith("temporal_")]
    + ["JOURNEYS_CODEC_KEYS"]
)
METRICS = "JOURNEYS_METRICS_HOST, JOURNEYS_METRICS_PORT"
STORE = "JOURNEYS_DATA_DIR, JOURNEYS_DATABASE_URL, JOURNEYS_DATABASE_CONNECT_TIMEOUT_SECONDS"
LOGS = "JOURNEYS_LOG_FORMAT, JOURNEYS_LOG_LEVEL"
ROUTING = "JOURNEYS_ROUTES, JOURNEYS_DEFAULT_PROVIDER, JOURNEYS_FAILOVER_AFTER_ATTEMPTS, JOURNEYS_*_SENDS_PER_SECOND"


def reads(*names: str) -> str:
    """A command's epilog: the environment variables it reads."""
    return "Environment: " + ", ".join(names) + "."


TEMPLATES = "JOURNEYS_TEMPLATES_DIR, JOURNEYS_BRAND_NAME, JOURNEYS_OPT_OUT_LINE, JOURNEYS_SMTP_* (e-mail previews)"
