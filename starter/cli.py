"""The ``journeys`` command line."""

from __future__ import annotations

import logging
import os
import sys
from enum import StrEnum

import typer

from durable_journeys.providers import ConfigError, JourneysError
from durable_journeys.starter.cli_operators import operators_app
from durable_journeys.starter.cli_support import (
    CONNECT,
    LOGS,
    METRICS,
    ROUTING,
    STORE,
    TEMPLATES,
    USAGE_ERRORS,
    command_settings,
    plain_typer,
    reads,
    run_command,
)
from durable_journeys.starter.settings import SANDBOX_SECRETS, WEBHOOK_SECRETS, dev_settings, load_settings

app = plain_typer("Durable Journeys: customer-journey workflows on Temporal.", no_args_is_help=True)
db_app = plain_typer("Database schema.")
app.add_typer(db_app, name="db")
templates_app = plain_typer("Template files: check them, preview a message.")
app.add_typer(templates_app, name="templates")
app.add_typer(operators_app)  # list, inspect, skip, exit, resend, report: commands of their own


class FallbackChoice(StrEnum):
    """How the demo's post-purchase steps fall back."""

    JOURNEY = "journey"
    GATEWAY = "gateway"


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
        run_command(
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
    epilog=reads(
        CONNECT,
        "JOURNEYS_TASK_QUEUE",
        STORE,
        ROUTING,
        "JOURNEYS_SANDBOX_URL",
        "JOURNEYS_SANDBOX_API_KEY (required while a channel routes to the sandbox)",
        "each routed provider's JOURNEYS_BIZGO_*, _FCM_*, _WEBPUSH_*, _SMTP_*, _WEBHOOK_CHANNEL_* (README: Providers)",
        "JOURNEYS_PROVIDER_TIMEOUT_SECONDS",
        "JOURNEYS_BRAND_NAME",
        "JOURNEYS_OPT_OUT_LINE",
        "JOURNEYS_GRACEFUL_SHUTDOWN_SECONDS",
        METRICS,
        LOGS,
    )
)
def worker() -> None:
    """Run a worker: the journeys and their sends, until SIGTERM (in-flight sends finish)."""
    from durable_journeys.worker import run_worker  # the composition root, above every other module

    raise typer.Exit(run_command(run_worker(command_settings())))


@app.command(
    epilog=reads(
        CONNECT,
        "JOURNEYS_TASK_QUEUE",
        STORE,
        "JOURNEYS_API_KEY (required)",
        "JOURNEYS_INBOX_TOKEN_SECRET (without it /inbox is not served)",
        ROUTING,
        "JOURNEYS_SANDBOX_WEBHOOK_SECRET (required while a channel routes to the sandbox)",
        "JOURNEYS_BIZGO_WEBHOOK_SECRET (required while Bizgo reports by webhook)",
        "JOURNEYS_WEBHOOK_MAX_BODY_BYTES",
        "JOURNEYS_EVENTS_PER_SECOND, JOURNEYS_EVENTS_BURST, JOURNEYS_RECEIPTS_PER_SECOND, JOURNEYS_RECEIPTS_BURST",
        "JOURNEYS_DOCS_ENABLED",
        "JOURNEYS_METRICS_HOST, JOURNEYS_WEBHOOK_METRICS_PORT",
        LOGS,
    )
)
def webhooks(
    host: str = HOST,
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Serve the webhook app: provider receipts, app events, in-app inboxes, health."""
    import uvicorn

    from durable_journeys.starter.assembly import build_providers, provider_problem, provider_secrets
    from durable_journeys.starter.journeys import Journeys
    from durable_journeys.starter.serve import require_free_port
    from durable_journeys.starter.webhooks import webhook_app_for

    settings = command_settings()
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

    raise typer.Exit(run_command(serve()))


@app.command(
    epilog=reads(
        "JOURNEYS_SANDBOX_API_KEY (required)",
        "JOURNEYS_SANDBOX_WEBHOOK_SECRET (required)",
        "JOURNEYS_DOCS_ENABLED",
        LOGS,
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
    from durable_journeys.starter.assembly import sandbox_config
    from durable_journeys.starter.serve import require_free_port

    settings = command_settings()
    settings.require_secrets(*SANDBOX_SECRETS)
    require_free_port(port, "--port", host=host)
    sandbox_app = create_sandbox_app(sandbox_config(settings, webhook_url=webhook_url))
    uvicorn.run(sandbox_app, host=host, port=port, log_config=None, lifespan="off")


@app.command(epilog=reads("JOURNEYS_TASK_QUEUE", STORE, "the secrets (random for this run when unset)", LOGS))
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

    settings = dev_settings(command_settings())
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
        run_command(
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
    epilog=reads("JOURNEYS_CODEC_KEYS", "JOURNEYS_CODEC_SERVER_TOKEN", "JOURNEYS_CODEC_SERVER_ORIGINS", LOGS),
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

    settings = command_settings()
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
    epilog=reads(CONNECT, STORE, "JOURNEYS_ROUTES", "JOURNEYS_BIZGO_API_KEY", "JOURNEYS_BIZGO_ENVIRONMENT", LOGS)
)
def reports(
    interval: float = typer.Option(5.0, min=0.5, max=300, help="Seconds between polls when none are waiting."),
) -> None:
    """Poll Bizgo's delivery reports into the message log and the journeys (JOURNEYS_BIZGO_RECEIPTS=poll)."""
    from durable_journeys.starter.assembly import build_providers, provider_problem, setup_logging
    from durable_journeys.starter.journeys import Journeys
    from durable_journeys.starter.receipts import ReceiptIntake, poll_reports

    settings = command_settings()
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

    raise typer.Exit(run_command(consume()))


@app.command(epilog=reads(CONNECT, LOGS))
def setup() -> None:
    """Register the journeys' search attributes on the configured namespace (idempotent)."""
    from durable_journeys.starter.connect import connect_client
    from durable_journeys.starter.setup import register_search_attributes

    settings = command_settings()

    async def register() -> None:
        added = await register_search_attributes(await connect_client(settings))
        typer.echo(f"added: {', '.join(added)}" if added else "search attributes already registered")

    raise typer.Exit(run_command(register()))


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


@db_app.command("upgrade", epilog=reads(STORE, LOGS))
def db_upgrade() -> None:
    """Create or migrate the store's tables (safe when several processes run it at once)."""
    from durable_journeys.starter.database import open_store

    settings = command_settings()

    async def upgrade() -> None:
        await (await open_store(settings)).close()

    raise typer.Exit(run_command(upgrade()))


@templates_app.command("check", epilog=reads(TEMPLATES))
def templates_check() -> None:
    """Validate every template file: variables, cp949 and byte limits, ad rules, the journeys' needs.

    Prints every problem, one line each, and exits 1 if there is any.
    """
    from durable_journeys.starter.template_tools import check_report

    ok, lines = check_report(load_settings())
    for line in lines:
        typer.echo(line)
    raise typer.Exit(0 if ok else 1)


@templates_app.command("render", epilog=reads(TEMPLATES))
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
    except USAGE_ERRORS as exc:  # a usage mistake: the command's usage line and the error
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
