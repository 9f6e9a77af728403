"""Composition root: settings -> store -> provider registry -> Temporal worker.

Run it with ``journeys worker``. Every setting comes from the environment with the
``JOURNEYS_`` prefix (or a ``.env`` file), e.g. ``JOURNEYS_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

import httpx
import structlog
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import PolicyConfig, SendActivities, Store, TemplateRegistry, default_templates
from activities.logs import configure_logging
from activities.inbox import InboxProvider
from providers import Channel, ProviderRegistry
from providers.sandbox import SandboxProvider
from workflows import ALL_WORKFLOWS, TASK_QUEUE

log = structlog.get_logger("worker")

# The journeys' modules hold no mutable global state (models, constants, steps, journeys): share
# them with the workflow sandbox instead of re-importing them, and rebuilding every pydantic
# model, for each workflow run. That re-import was most of a cached journey's memory and CPU.
RESTRICTIONS = SandboxRestrictions.default.with_passthrough_modules(
    "workflows", "pydantic", "pydantic_core", "annotated_types"
)


class Settings(BaseSettings):
    """Everything a deployment configures (env prefix ``JOURNEYS_``)."""

    model_config = SettingsConfigDict(env_prefix="JOURNEYS_", env_file=".env", extra="ignore")

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_tls: bool = False
    task_queue: str = TASK_QUEUE

    database_url: str = "sqlite+aiosqlite:///journeys.db"

    sandbox_url: str = "http://127.0.0.1:8600"
    sandbox_api_key: SecretStr = SecretStr("sandbox-key")
    sandbox_webhook_secret: SecretStr = SecretStr("sandbox-webhook-secret")
    provider_timeout_seconds: float = Field(default=10.0, gt=0)

    api_key: SecretStr = SecretStr("dev-api-key")
    webhook_max_body_bytes: int = Field(default=256 * 1024, gt=0)

    brand_name: str = "듀러블샵"
    opt_out_line: str = "무료수신거부 080-000-0000"

    graceful_shutdown_seconds: float = Field(default=30.0, ge=0)
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: str = "INFO"

    def policy(self) -> PolicyConfig:
        """The contact-policy settings."""
        return PolicyConfig(brand_name=self.brand_name, opt_out_line=self.opt_out_line)


def setup_logging(settings: Settings) -> None:
    """Configure logging as the settings say."""
    json = None if settings.log_format == "auto" else settings.log_format == "json"
    configure_logging(json=json, level=settings.log_level)


async def connect_client(settings: Settings) -> Client:
    """A Temporal client with the pydantic data converter."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=settings.temporal_tls,
        data_converter=pydantic_data_converter,
    )


def build_store(settings: Settings) -> Store:
    """The store for the configured database."""
    return Store.from_url(settings.database_url)


def build_providers(
    settings: Settings, store: Store, *, sandbox_client: httpx.AsyncClient | None = None
) -> ProviderRegistry:
    """Every configured provider: the in-app inbox for ``in_app``, the sandbox for the rest
    until real providers are configured."""
    client = sandbox_client or httpx.AsyncClient(
        base_url=settings.sandbox_url, timeout=settings.provider_timeout_seconds
    )
    sandbox = SandboxProvider(
        client,
        api_key=settings.sandbox_api_key.get_secret_value(),
        webhook_secret=settings.sandbox_webhook_secret.get_secret_value(),
    )
    inbox = InboxProvider(store)
    return ProviderRegistry(
        {sandbox.name: sandbox, inbox.name: inbox}, routes={Channel.IN_APP: inbox.name}, default=sandbox.name
    )


def build_worker(
    client: Client,
    activities: SendActivities,
    *,
    task_queue: str = TASK_QUEUE,
    workflows: Sequence[type] = ALL_WORKFLOWS,
    graceful_shutdown: timedelta = timedelta(seconds=30),
    **worker_kwargs: Any,
) -> Worker:
    """A worker running every journey and the send activity on one task queue."""
    worker_kwargs.setdefault("workflow_runner", SandboxedWorkflowRunner(restrictions=RESTRICTIONS))
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(workflows),
        activities=[activities.send_message],
        graceful_shutdown_timeout=graceful_shutdown,
        **worker_kwargs,
    )


def build_activities(
    settings: Settings, store: Store, providers: ProviderRegistry, templates: TemplateRegistry | None = None
) -> SendActivities:
    """The send activities with their dependencies."""
    return SendActivities(store, providers, templates or default_templates(), settings.policy())


async def run_worker(settings: Settings) -> None:
    """Run a worker until SIGINT or SIGTERM, then let in-flight sends finish."""
    client = await connect_client(settings)
    store = build_store(settings)
    await store.migrate()
    providers = build_providers(settings, store)
    worker = build_worker(
        client,
        build_activities(settings, store, providers),
        task_queue=settings.task_queue,
        graceful_shutdown=timedelta(seconds=settings.graceful_shutdown_seconds),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker.started", task_queue=settings.task_queue, address=settings.temporal_address)
    async with worker:
        await stop.wait()
        log.info("worker.stopping")
    await store.close()
