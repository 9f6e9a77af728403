"""``journeys dev``: a whole local installation for app developers, until Ctrl-C."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import typer
from pydantic import SecretStr

from durable_journeys.activities.codec import new_key, with_codec
from durable_journeys.activities.metrics import serve_metrics
from durable_journeys.providers import ConfigError
from durable_journeys.starter.codec_server import codec_app
from durable_journeys.starter.devserver import start_dev_server, until_interrupted
from durable_journeys.starter.serve import serving
from durable_journeys.starter.settings import Settings, secret_problem, without_password
from durable_journeys.starter.stack import embedded_stack


def codec_help(codec_url: str, token: str) -> list[str]:
    """How to see payloads decoded: the UI through a setting kept in the browser, the CLI with a header.

    The token is never given to the Temporal server: its command line is readable by every local
    user, and the UI serves its settings (``/api/v1/settings``) to anyone who reaches it.
    """
    return [
        f"codec server: {codec_url} (payloads are encrypted). To see them decoded in the Temporal UI, open its",
        "  codec server settings (the data-encoder icon in the top bar) and enter this endpoint, kept in",
        f"  your browser only: {codec_url}/{token}",
        f'  temporal CLI: --codec-endpoint {codec_url} --codec-auth "Bearer $JOURNEYS_CODEC_SERVER_TOKEN"',
    ]


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
    ] + (
        [f"  JOURNEYS_CODEC_SERVER_TOKEN={settings.codec_server_token.get_secret_value()}"]
        if settings.codec_keys.get_secret_value() and settings.codec_server_token.get_secret_value()
        else []
    )


async def run_dev(
    settings: Settings,
    *,
    port: int,
    ui_port: int,
    sandbox_port: int,
    webhook_port: int,
    codec_port: int | None = None,
    metrics_port: int | None = None,
) -> int:
    """Serve everything on fixed local ports; the dev server keeps its state in ``temporal.db`` in the data dir.

    With ``codec_port``, payloads are encrypted (``JOURNEYS_CODEC_KEYS``) and the UI decodes them
    through the codec server on that port; with ``metrics_port``, ``/metrics`` is served there.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as running:
        codec_url = None
        if codec_port is not None:
            codec_url = await running.enter_async_context(serve_codec(settings, codec_port))
        env = await start_dev_server(port=port, ui_port=ui_port, database_file=str(settings.data_dir / "temporal.db"))
        running.push_async_callback(env.shutdown)
        client = with_codec(env.client, settings.codec())
        if metrics_port is not None:
            serve_metrics(metrics_port, settings.metrics_host)
        async with embedded_stack(
            client,
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
                if codec_url is not None:
                    for line in codec_help(codec_url, settings.codec_server_token.get_secret_value()):
                        typer.echo(line)
                if metrics_port is not None:
                    typer.echo(f"metrics: http://{settings.metrics_host}:{metrics_port}/metrics")
                for line in secrets_help(stack.settings):
                    typer.echo(line)
                await until_interrupted()
    return 0


def codec_settings(settings: Settings) -> Settings:
    """``settings`` with a codec key and a codec-server token.

    The key: ``JOURNEYS_CODEC_KEYS``, else a development key kept in ``codec-keys`` in the data
    dir (made once, owner-only), because the dev server keeps its histories across runs. The
    token: ``JOURNEYS_CODEC_SERVER_TOKEN``, else a random one for this run.
    """
    fresh: dict[str, SecretStr] = {}
    if not settings.codec_keys.get_secret_value().strip():
        kept = settings.data_dir / "codec-keys"
        if not kept.exists():
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(new_key("dev") + "\n")
        fresh["codec_keys"] = SecretStr(kept.read_text().strip())
    if secret_problem(settings.codec_server_token.get_secret_value()):
        fresh["codec_server_token"] = SecretStr(secrets.token_urlsafe(32))
    return settings.model_copy(update=fresh)


@asynccontextmanager
async def serve_codec(settings: Settings, port: int, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run the codec server for ``settings`` until the block ends; yields its URL (see ``codec_help``)."""
    codec = settings.codec()
    if codec is None:
        raise ConfigError("JOURNEYS_CODEC_KEYS is not set: `journeys codec-key` makes a key")
    token = settings.codec_server_token.get_secret_value()
    app = codec_app(codec, token=token, origins=settings.codec_server_origins)
    async with serving(app, host=host, port=port) as url:
        yield url
