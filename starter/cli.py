"""The ``journeys`` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from enum import StrEnum
from typing import Any

import typer

from durable_journeys.activities import KST
from durable_journeys.providers import ConfigError, JourneysError
from durable_journeys.starter.assembly import (
    build_providers,
    provider_problem,
    provider_secrets,
    sandbox_config,
    setup_logging,
)
from durable_journeys.starter.connect import connect_client
from durable_journeys.starter.database import open_store
from durable_journeys.starter.settings import SANDBOX_SECRETS, WEBHOOK_SECRETS, Settings, dev_settings, load_settings

# Plain help (no rich panels showing "<bool>" on flags); no pretty tracebacks: usage and
# configuration mistakes are one line (main), anything else is a bug and logged as one.
app = typer.Typer(
    help="Durable Journeys: customer-journey workflows on Temporal.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", rich_markup_mode=None, pretty_exceptions_enable=False)
app.add_typer(db_app, name="db")
templates_app = typer.Typer(
    help="Template files: check them, preview a message.", rich_markup_mode=None, pretty_exceptions_enable=False
)
app.add_typer(templates_app, name="templates")


def _usage_errors() -> tuple[type[BaseException], ...]:
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


_USAGE_ERRORS = _usage_errors()


class FallbackChoice(StrEnum):
    """How the demo's post-purchase steps fall back."""

    JOURNEY = "journey"
    GATEWAY = "gateway"


def _run(coro: Coroutine[Any, Any, int | None]) -> int:
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


def _settings() -> Settings:

    settings = load_settings()
    setup_logging(settings)
    return settings


# What each command reads from the environment (also from a .env file in the current directory).
_CONNECT = ", ".join(
    [f"JOURNEYS_{name.upper()}" for name in Settings.model_fields if name.startswith("temporal_")]
    + ["JOURNEYS_CODEC_KEYS"]
)
_METRICS = "JOURNEYS_METRICS_HOST, JOURNEYS_METRICS_PORT"
_STORE = "JOURNEYS_DATA_DIR, JOURNEYS_DATABASE_URL, JOURNEYS_DATABASE_CONNECT_TIMEOUT_SECONDS"
_LOGS = "JOURNEYS_LOG_FORMAT, JOURNEYS_LOG_LEVEL"
_ROUTING = "JOURNEYS_ROUTES, JOURNEYS_DEFAULT_PROVIDER, JOURNEYS_FAILOVER_AFTER_ATTEMPTS, JOURNEYS_*_SENDS_PER_SECOND"


def _reads(*names: str) -> str:
    return "Environment: " + ", ".join(names) + "."


HOST = typer.Option("127.0.0.1", help="Interface to listen on.")
FALLBACK = typer.Option(
    FallbackChoice.JOURNEY,
    help="Post-purchase fallback: the journey waits for each receipt (journey), or the provider falls back (gateway).",
)


@app.command(epilog="Environment: none (the demo makes its own secrets and database).")
def demo(
    keep: bool = typer.Option(False, "--keep", help="Leave the server and UI running until Ctrl-C."),
    port: int = typer.Option(7233, help="Temporal's gRPC port (other commands dial localhost:7233)."),
    ui_port: int = typer.Option(8233, help="Port of the Temporal UI."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every log line."),
    fallback: FallbackChoice = FALLBACK,
    metrics_port: int = typer.Option(9464, help="With --keep: serve /metrics on this port (0: off)."),
    codec: bool = typer.Option(False, "--codec", help="Encrypt payloads; the UI decodes them via a codec server."),
    codec_port: int = typer.Option(8081, help="Port of the codec server (with --codec)."),
) -> None:
    """Run the three reference journeys for sample customers on the embedded dev server."""
    from durable_journeys.activities.logs import configure_logging
    from durable_journeys.starter.demo import run_demo
    from durable_journeys.starter.serve import require_free_port

    configure_logging(json=False, level="INFO" if verbose else "WARNING")
    require_free_port(port, "--port")
    require_free_port(ui_port, "--ui-port")
    if keep and metrics_port:
        require_free_port(metrics_port, "--metrics-port")
    if codec:
        require_free_port(codec_port, "--codec-port")
    raise typer.Exit(
        _run(
            run_demo(
                keep=keep,
                port=port,
                ui_port=ui_port,
                fallback=fallback.value,
                metrics_port=metrics_port,
                codec_port=codec_port if codec else None,
            )
        )
    )


@app.command(
    epilog=_reads(
        _CONNECT,
        "JOURNEYS_TASK_QUEUE",
        _STORE,
        _ROUTING,
        "JOURNEYS_SANDBOX_URL",
        "JOURNEYS_SANDBOX_API_KEY (required while a channel routes to the sandbox)",
        "each routed provider's JOURNEYS_BIZGO_*, _FCM_*, _WEBPUSH_*, _SMTP_*, _WEBHOOK_CHANNEL_* (README: Providers)",
        "JOURNEYS_PROVIDER_TIMEOUT_SECONDS",
        "JOURNEYS_BRAND_NAME",
        "JOURNEYS_OPT_OUT_LINE",
        "JOURNEYS_GRACEFUL_SHUTDOWN_SECONDS",
        _METRICS,
        _LOGS,
    )
)
def worker() -> None:
    """Run a worker: the journeys and their sends, until SIGTERM (in-flight sends finish)."""
    from durable_journeys.worker import run_worker  # the composition root, above every other module

    raise typer.Exit(_run(run_worker(_settings())))


@app.command(
    epilog=_reads(
        _CONNECT,
        "JOURNEYS_TASK_QUEUE",
        _STORE,
        "JOURNEYS_API_KEY (required)",
        "JOURNEYS_INBOX_TOKEN_SECRET (without it /inbox is not served)",
        _ROUTING,
        "JOURNEYS_SANDBOX_WEBHOOK_SECRET (required while a channel routes to the sandbox)",
        "JOURNEYS_BIZGO_WEBHOOK_SECRET (required while Bizgo reports by webhook)",
        "JOURNEYS_WEBHOOK_MAX_BODY_BYTES",
        "JOURNEYS_EVENTS_PER_SECOND, JOURNEYS_EVENTS_BURST, JOURNEYS_RECEIPTS_PER_SECOND, JOURNEYS_RECEIPTS_BURST",
        "JOURNEYS_DOCS_ENABLED",
        "JOURNEYS_METRICS_HOST, JOURNEYS_WEBHOOK_METRICS_PORT",
        _LOGS,
    )
)
def webhooks(
    host: str = HOST,
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Serve the webhook app: provider receipts, app events, in-app inboxes, health."""
    import uvicorn

    from durable_journeys.starter.journeys import Journeys
    from durable_journeys.starter.serve import require_free_port
    from durable_journeys.starter.webhooks import webhook_app_for

    settings = _settings()
    inbox = ("inbox_token_secret",) if settings.inbox_token_secret.get_secret_value().strip() else ()
    settings.require_secrets(*WEBHOOK_SECRETS, *inbox, *provider_secrets(settings, webhooks=True))
    problem = provider_problem(settings, webhooks=True)
    if problem:
        raise ConfigError(problem)
    require_free_port(port, "--port", host=host)

    async def serve() -> None:
        journeys = await Journeys.connect(settings)
        if settings.webhook_metrics_port:
            from durable_journeys.activities.metrics import serve_metrics

            serve_metrics(settings.webhook_metrics_port, settings.metrics_host)
        web = webhook_app_for(settings, journeys, build_providers(settings, journeys.store))
        await uvicorn.Server(uvicorn.Config(web, host=host, port=port, log_config=None, lifespan="off")).serve()
        await journeys.close()

    raise typer.Exit(_run(serve()))


@app.command(
    epilog=_reads(
        "JOURNEYS_SANDBOX_API_KEY (required)",
        "JOURNEYS_SANDBOX_WEBHOOK_SECRET (required)",
        "JOURNEYS_DOCS_ENABLED",
        _LOGS,
    )
)
def sandbox(
    host: str = HOST,
    port: int = typer.Option(8600, help="Port to listen on."),
    webhook_url: str = typer.Option("http://127.0.0.1:8000/webhooks/sandbox", help="Where receipts go."),
) -> None:
    """Serve the sandbox provider alone."""
    import uvicorn

    from durable_journeys.providers.sandbox import create_sandbox_app
    from durable_journeys.starter.serve import require_free_port

    settings = _settings()
    settings.require_secrets(*SANDBOX_SECRETS)
    require_free_port(port, "--port", host=host)
    sandbox_app = create_sandbox_app(sandbox_config(settings, webhook_url=webhook_url))
    uvicorn.run(sandbox_app, host=host, port=port, log_config=None, lifespan="off")


@app.command(epilog=_reads("JOURNEYS_TASK_QUEUE", _STORE, "the secrets (random for this run when unset)", _LOGS))
def dev(
    port: int = typer.Option(7233, help="Temporal's gRPC port."),
    ui_port: int = typer.Option(8233, help="Port of the Temporal UI."),
    sandbox_port: int = typer.Option(8600, help="Port of the sandbox provider."),
    webhook_port: int = typer.Option(8000, help="Port of the webhook app."),
    codec: bool = typer.Option(
        False, "--codec", help="Encrypt payloads and let the UI decode them through a local codec server."
    ),
    codec_port: int = typer.Option(8081, help="Port of the codec server (with --codec)."),
    metrics_port: int = typer.Option(9464, help="Port of /metrics (0: off)."),
) -> None:
    """Run the dev server, sandbox, webhook app and a worker together until Ctrl-C."""
    from durable_journeys.starter.dev import codec_settings, run_dev
    from durable_journeys.starter.serve import require_free_port

    settings = dev_settings(_settings())
    if codec:
        settings = codec_settings(settings)
        settings.codec()  # a bad JOURNEYS_CODEC_KEYS: one line before anything starts
    ports = [
        (port, "--port"),
        (ui_port, "--ui-port"),
        (sandbox_port, "--sandbox-port"),
        (webhook_port, "--webhook-port"),
    ]
    ports += [(codec_port, "--codec-port")] if codec else []
    ports += [(metrics_port, "--metrics-port")] if metrics_port else []
    for number, option in ports:
        require_free_port(number, option)
    raise typer.Exit(
        _run(
            run_dev(
                settings,
                port=port,
                ui_port=ui_port,
                sandbox_port=sandbox_port,
                webhook_port=webhook_port,
                codec_port=codec_port if codec else None,
                metrics_port=metrics_port or None,
            )
        )
    )


@app.command(
    "codec-server",
    epilog=_reads("JOURNEYS_CODEC_KEYS", "JOURNEYS_CODEC_SERVER_TOKEN", "JOURNEYS_CODEC_SERVER_ORIGINS", _LOGS),
)
def codec_server(
    host: str = HOST,
    port: int = typer.Option(8081, help="Port to listen on."),
) -> None:
    """Serve Temporal's codec endpoints (/encode, /decode) so the UI shows encrypted payloads decoded.

    Give the UI http://HOST:PORT/$JOURNEYS_CODEC_SERVER_TOKEN as its codec endpoint (or pass the
    token as a bearer token). Only JOURNEYS_CODEC_SERVER_ORIGINS may call it from a browser.
    """
    import uvicorn

    from durable_journeys.starter.codec_server import codec_app
    from durable_journeys.starter.serve import require_free_port

    settings = _settings()
    settings.require_secrets("codec_server_token")
    codec = settings.codec()
    if codec is None:
        raise ConfigError("JOURNEYS_CODEC_KEYS is not set: `journeys codec-key` makes a key")
    require_free_port(port, "--port", host=host)
    app_ = codec_app(codec, token=settings.codec_server_token.get_secret_value(), origins=settings.codec_server_origins)
    typer.echo(
        f"codec server on http://{host}:{port} (keys: {', '.join(codec.key_ids)}; encrypting with {codec.key_id})"
    )
    # No access log: a UI's codec endpoint carries the token in its path.
    uvicorn.run(app_, host=host, port=port, log_config=None, lifespan="off", access_log=False)


@app.command("codec-key", epilog="Environment: none.")
def codec_key(key_id: str = typer.Argument("", help="An id for the key (default: a random one).")) -> None:
    """Print a new 256-bit key as id:base64key, for JOURNEYS_CODEC_KEYS (put it first to rotate)."""
    from durable_journeys.activities.codec import new_key

    typer.echo(new_key(key_id or None))


@app.command(
    epilog=_reads(_CONNECT, _STORE, "JOURNEYS_ROUTES", "JOURNEYS_BIZGO_API_KEY", "JOURNEYS_BIZGO_ENVIRONMENT", _LOGS)
)
def reports(
    interval: float = typer.Option(5.0, min=0.5, max=300, help="Seconds between polls when none are waiting."),
) -> None:
    """Poll Bizgo's delivery reports into the message log and the journeys (JOURNEYS_BIZGO_RECEIPTS=poll)."""
    from durable_journeys.starter.journeys import Journeys
    from durable_journeys.starter.receipts import ReceiptIntake, poll_reports

    settings = _settings()
    if settings.bizgo_receipts != "poll":
        raise ConfigError("JOURNEYS_BIZGO_RECEIPTS is not poll: Bizgo posts its reports to journeys webhooks")
    problem = provider_problem(settings, webhooks=False)
    if problem:
        raise ConfigError(problem)

    async def consume() -> None:
        setup_logging(settings)
        journeys = await Journeys.connect(settings)
        try:
            providers = build_providers(settings, journeys.store)
            if "bizgo" not in providers.names():
                raise ConfigError("no channel is routed to bizgo (JOURNEYS_ROUTES): there are no reports to poll")
            await poll_reports(ReceiptIntake(journeys), providers.get("bizgo"), interval=interval)
        finally:
            await journeys.close()

    raise typer.Exit(_run(consume()))


@app.command(epilog=_reads(_CONNECT, _LOGS))
def setup() -> None:
    """Register the journeys' search attributes on the configured namespace (idempotent)."""
    from durable_journeys.starter.setup import register_search_attributes

    settings = _settings()

    async def register() -> None:
        added = await register_search_attributes(await connect_client(settings))
        typer.echo(f"added: {', '.join(added)}" if added else "search attributes already registered")

    raise typer.Exit(_run(register()))


@app.command(epilog="Environment: none. Needs a source checkout (the bench/ folder is not installed).")
def bench(n: int = typer.Argument(500, help="Journeys per run.")) -> None:
    """Run the benchmark (``python -m bench N`` in a source checkout; results in bench/README.md)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / "__main__.py").is_file():
        typer.echo(
            "journeys: the benchmark needs a source checkout (its bench/ folder is not installed); "
            "run `python -m bench N` from a git clone",
            err=True,
        )
        raise typer.Exit(2)
    raise typer.Exit(subprocess.call([sys.executable, "-m", "bench", str(n)], cwd=root))


@app.command(epilog=_reads(_CONNECT, _STORE, _LOGS))
def inspect(workflow_id: str = typer.Argument(..., help="e.g. post-purchase:A-1001 or cart:c-42.")) -> None:
    """Print a journey's timeline: what was sent, when, why not, and operators' actions (who and why)."""
    from durable_journeys.starter.demo import format_timeline

    async def show(journeys: Any) -> None:
        timeline = await journeys.timeline(workflow_id)
        for line in format_timeline(timeline, clock=True):
            typer.echo(line)
        actions = [e for e in timeline if e.outcome.value == "operator"]
        typer.echo(f"  operator actions: {len(actions)}")

    raise typer.Exit(_run(_with_journeys(show)))


def _with_journeys(action: Callable[[Any], Awaitable[None]]) -> Coroutine[Any, Any, None]:
    """Connect the facade from the settings, run ``action`` with it, close it."""
    from durable_journeys.starter.journeys import Journeys

    settings = _settings()

    async def run() -> None:
        journeys = await Journeys.connect(settings, create_store=False)  # operators' commands make no store
        try:
            await action(journeys)
        finally:
            await journeys.close()

    return run()


OPERATOR = typer.Option(None, "--operator", "-o", help="Who acts (default: your login name).")
REASON = typer.Option(..., "--reason", "-r", help="Why; kept in the journey's timeline.")


def _operator(name: str | None) -> str:
    import getpass

    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise typer.BadParameter("who acts? pass --operator NAME") from None


@app.command("list", epilog=_reads(_CONNECT, _STORE, _LOGS))
def list_journeys(
    customer: str | None = typer.Option(None, "--customer", help="One customer's journeys (CustomerId)."),
    journey: str | None = typer.Option(None, "--journey", help="One journey, e.g. cart or post-purchase."),
    stage: str | None = typer.Option(
        None, "--stage", help="At one stage (JourneyStage), e.g. waiting_for_delivery or waiting_for_engagement."
    ),
    ended: bool = typer.Option(False, "--ended", help="Ended journeys too, not only running ones."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="At most this many."),
) -> None:
    """List journeys by customer, journey and stage (Temporal's visibility; the query works in the UI too)."""
    from durable_journeys.starter.inputs import visibility_query

    query = visibility_query(customer_id=customer, journey=journey, stage=stage, running=not ended)

    async def show(journeys: Any) -> None:
        found = await journeys.list_journeys(
            customer_id=customer, journey=journey, stage=stage, running=not ended, limit=limit
        )
        typer.echo(f"query: {query}")
        rows = [("WORKFLOW ID", "JOURNEY", "STAGE", "CUSTOMER", "STATUS", "STARTED (KST)")]
        for j in found:
            started = j.started_at.astimezone(KST).strftime("%Y-%m-%d %H:%M") if j.started_at else "-"
            rows.append((j.workflow_id, j.journey, j.stage or "-", j.customer_id or "-", j.status, started))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        typer.echo(f"{len(found)} journey(s)")

    raise typer.Exit(_run(_with_journeys(show)))


def _act(workflow_id: str, operator: str | None, reason: str, update: str) -> None:
    """Check an operator's action, then call ``update`` (``skip_wait`` or ``exit_journey``) and print its answer."""
    from durable_journeys.starter.inputs import operator_action

    who = _operator(operator)
    operator_action(workflow_id, who, reason)

    async def act(journeys: Any) -> None:
        typer.echo(await getattr(journeys, update)(workflow_id, operator=who, reason=reason))

    raise typer.Exit(_run(_with_journeys(act)))


@app.command("skip", epilog=_reads(_CONNECT, _STORE, _LOGS))
def skip(
    workflow_id: str = typer.Argument(..., help="The journey, e.g. post-purchase:A-1001."),
    operator: str | None = OPERATOR,
    reason: str = REASON,
    as_event: str | None = typer.Option(
        None, "--as", help="As if this event came instead, e.g. order.delivered (one the wait is for)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Act without asking (it says what it will do first)."),
) -> None:
    """End the wait a journey is in now (a timer, an event, a receipt); says first what that will do.

    Without --as the wait ends as if it had run out (a wait for delivery: the journey gives up);
    with --as order.delivered, as if the parcel had been delivered.
    """
    from durable_journeys.starter.inputs import operator_action

    who = _operator(operator)
    operator_action(workflow_id, who, reason, as_event=as_event)

    async def act(journeys: Any) -> None:
        info = await journeys.waiting(workflow_id)
        if info.waiting is None:
            typer.echo(f"{workflow_id} is not waiting now (it is sending, or has ended); nothing was done")
            raise typer.Exit(1)
        effect = f"as if {as_event} came" if as_event else info.on_skip
        typer.echo(f"{workflow_id} waits: {info.waiting}. A skip: {effect}.")
        if not as_event and info.events:
            typer.echo(f"  (to go on as if an event came instead: --as {' | --as '.join(info.events)})")
        if not yes:
            if not sys.stdin.isatty():
                typer.echo("not skipped: add --yes to act without a terminal to confirm at", err=True)
                raise typer.Exit(2)
            if not typer.confirm("Skip it?"):
                raise typer.Exit(1)
        typer.echo(await journeys.skip_wait(workflow_id, operator=who, reason=reason, as_event=as_event))

    raise typer.Exit(_run(_with_journeys(act)))


@app.command("exit", epilog=_reads(_CONNECT, _STORE, _LOGS))
def exit_journey(
    workflow_id: str = typer.Argument(..., help="The journey, e.g. cart:c-42."),
    operator: str | None = OPERATOR,
    reason: str = REASON,
) -> None:
    """End a journey: nothing more is sent to the customer by it."""
    _act(workflow_id, operator, reason, "exit_journey")


@app.command("resend", epilog=_reads(_CONNECT, _STORE, _LOGS))
def resend(
    workflow_id: str = typer.Argument(..., help="The journey, e.g. post-purchase:A-1001."),
    step: str = typer.Argument(..., help="A step it sent (journeys inspect lists them), e.g. shipping_started."),
    channel: str | None = typer.Option(None, "--channel", "-c", help="One of the step's channels (default: as sent)."),
    operator: str | None = OPERATOR,
    reason: str = REASON,
) -> None:
    """Send a step again under a new key linked to the first (consent and quiet hours still apply)."""
    from durable_journeys.starter.inputs import operator_action

    who = _operator(operator)
    operator_action(workflow_id, who, reason, step=step, channel=channel)

    async def act(journeys: Any) -> None:
        typer.echo(await journeys.resend(workflow_id, step, channel=channel, operator=who, reason=reason))

    raise typer.Exit(_run(_with_journeys(act)))


class ReportFormat(StrEnum):
    """How ``journeys report`` prints."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    HTML = "html"


def _when(value: str, option: str, now: Any) -> Any:
    """An ISO date or time (KST when it has no offset), or a duration back from now: 7d, 12h, 30m."""
    from datetime import datetime, timedelta

    text = value.strip()
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[-1:] in units and text[:-1].isdigit():
        return now - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: use a date (2026-11-01), a time (2026-11-01T09:00) or 7d/12h/30m", param_hint=option
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=KST)


REPORT_FORMAT = typer.Option(ReportFormat.TABLE, "--format", help="table, csv, json or html.")


@app.command("report", epilog=_reads(_STORE, _LOGS))
def report(
    journey: str | None = typer.Option(None, "--journey", help="One journey (default: every journey)."),
    since: str = typer.Option("30d", "--since", help="From: a date, a time (KST) or a duration back, e.g. 7d."),
    until: str | None = typer.Option(None, "--until", help="Until (default: now)."),
    window: int = typer.Option(7, "--window", min=1, max=90, help="Attribution window for conversions, days."),
    fmt: ReportFormat = REPORT_FORMAT,
    output: str | None = typer.Option(None, "--output", "-o", help="Write to this file (html: report.html)."),
) -> None:
    """Per journey, step and channel: sent, delivered, fallback, skipped by reason, opened, clicked, converted."""
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from durable_journeys.starter.report import journey_report, render

    settings = _settings()
    now = datetime.now(UTC)
    start, end = _when(since, "--since", now), _when(until, "--until", now) if until else now
    if start >= end:
        raise typer.BadParameter("must be before --until (or now)", param_hint="--since")

    async def build() -> None:
        store = await open_store(settings, create=False)
        try:
            made = await journey_report(
                store, since=start, until=end, attribution=timedelta(days=window), journey=journey
            )
        finally:
            await store.close()
        text = render(made, fmt.value)
        target = output or ("report.html" if fmt is ReportFormat.HTML else None)
        if target is None:
            typer.echo(text, nl=False)
            return
        Path(target).write_text(text, encoding="utf-8")
        typer.echo(f"wrote {target} ({len(made.rows)} rows)")

    raise typer.Exit(_run(build()))


@db_app.command("upgrade", epilog=_reads(_STORE, _LOGS))
def db_upgrade() -> None:
    """Create or migrate the store's tables (safe when several processes run it at once)."""
    settings = _settings()

    async def upgrade() -> None:
        await (await open_store(settings)).close()

    raise typer.Exit(_run(upgrade()))


_TEMPLATES = "JOURNEYS_TEMPLATES_DIR, JOURNEYS_BRAND_NAME, JOURNEYS_OPT_OUT_LINE, JOURNEYS_SMTP_* (e-mail previews)"


@templates_app.command("check", epilog=_reads(_TEMPLATES))
def templates_check() -> None:
    """Validate every template file: variables, cp949 and byte limits, ad rules, the journeys' needs.

    Prints every problem, one line each, and exits 1 if there is any.
    """
    from durable_journeys.starter.template_tools import check_report

    ok, lines = check_report(load_settings())
    for line in lines:
        typer.echo(line)
    raise typer.Exit(0 if ok else 1)


@templates_app.command("render", epilog=_reads(_TEMPLATES))
def templates_render(
    name: str = typer.Argument(..., help="Template code, e.g. recent_buyer_sale."),
    channel: str = typer.Option(..., "--channel", "-c", help="Channel: sms, alimtalk, email, push ..."),
    var: list[str] = typer.Option([], "--var", help="A variable, name=value (repeat for each)."),  # noqa: B008
) -> None:
    """Preview a message exactly as it would be sent: ad decoration, SMS or LMS, e-mail headers."""
    from durable_journeys.providers import Channel
    from durable_journeys.starter.template_tools import parse_vars, render_preview

    try:
        chosen = Channel(channel)
    except ValueError:
        raise typer.BadParameter(
            f"{channel!r} is no channel; use one of {', '.join(c.value for c in Channel)}"
        ) from None
    for line in render_preview(load_settings(), name, chosen, parse_vars(var)):
        typer.echo(line)


def main() -> None:
    """Console entry point.

    Leaves with ``os._exit`` once the event loop is closed: the Temporal SDK can crash at
    interpreter exit (temporalio/sdk-python#300).
    """
    try:
        code = app(standalone_mode=False, prog_name="journeys")
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except JourneysError as exc:  # a configuration mistake: one line, no traceback
        typer.echo(f"journeys: {exc}", err=True)
        code = 2
    except _USAGE_ERRORS as exc:  # a usage mistake: the command's usage line and the error
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            typer.echo(f"Error: {exc}", err=True)
        code = getattr(exc, "exit_code", 2)
    except Exception:  # the CLI's last line of defence: report, then leave with 1
        logging.getLogger("journeys").exception("command failed")
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
