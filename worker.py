"""Composition root: settings -> store -> providers -> send activities -> Temporal workers.

Run it with ``journeys worker``. Every setting comes from the environment with the ``JOURNEYS_``
prefix (or a ``.env`` file), e.g. ``JOURNEYS_DATABASE_URL``: see ``starter/settings/``. How each
part is built lives in ``starter/assembly.py`` (providers come from their plug-ins), the
connection to Temporal in ``starter/connect.py``, the store in ``starter/database.py``; this
module checks the settings in the order a person fixes them, builds the parts and runs them.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

import structlog

from durable_journeys.activities.metrics import serve_metrics
from durable_journeys.providers import ConfigError
from durable_journeys.starter.assembly import (
    build_activities,
    build_providers,
    build_worker,
    journey_classes,
    journey_templates,
    provider_problem,
    provider_secrets,
    send_queues,
)
from durable_journeys.starter.connect import connect_client
from durable_journeys.starter.database import open_store
from durable_journeys.starter.settings import Settings

log = structlog.get_logger("worker")


async def run_worker(settings: Settings) -> None:
    """Run a worker until SIGINT or SIGTERM, then let in-flight sends finish.

    Raises:
        ConfigError: a secret the worker needs is unset, short or a known development value; a
            provider, journey, priority or template setting is wrong; Temporal or the database
            cannot be reached (each one line naming the setting).
    """
    settings.require_secrets(*provider_secrets(settings, webhooks=False))
    problem = provider_problem(settings, webhooks=False)  # before connecting: the cheaper mistake first
    if problem:
        raise ConfigError(problem)
    workflows = journey_classes(settings)  # the shop's own journeys too
    settings.policy([w.journey for w in workflows])  # a misspelt journey priority
    templates = journey_templates(settings, workflows)  # a template file's mistake stops the worker, not a journey
    client = await connect_client(settings)
    store = await open_store(settings)
    providers = build_providers(settings, store)
    queues = send_queues(settings)
    worker = build_worker(
        client,
        build_activities(settings, store, providers, templates),
        task_queue=settings.task_queue,
        queues=queues,
        workflows=workflows,
        graceful_shutdown=timedelta(seconds=settings.graceful_shutdown_seconds),
    )
    if settings.metrics_port:
        serve_metrics(settings.metrics_port, settings.metrics_host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker.started",
        task_queue=settings.task_queue,
        address=settings.temporal_address,
        send_queues={name: f"{queue} ({rate:g}/s)" for name, (queue, rate) in queues.items()},
    )
    async with worker:
        await stop.wait()
        log.info("worker.stopping")
    await store.close()
