"""Building the parts from the settings: providers (from their plug-ins), templates, activities, workers.

``worker.py`` and the testing kit compose a running system from these; nothing here starts anything.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import temporalio.workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from durable_journeys.activities import SendActivities, Store, TemplateRegistry
from durable_journeys.activities.inbox import InboxProvider
from durable_journeys.activities.logs import configure_logging
from durable_journeys.activities.policy import mark_advertising
from durable_journeys.activities.templates import PACKAGED_DIR, check_templates, load_templates
from durable_journeys.providers import Channel, ConfigError, Provider, ProviderRegistry
from durable_journeys.providers.channels import channels as registered_channels
from durable_journeys.providers.plugins import BuildContext, provider_plugin
from durable_journeys.starter.settings import Settings
from durable_journeys.workflows import ALL_WORKFLOWS, TASK_QUEUE, JourneyWorkflow

if TYPE_CHECKING:
    from durable_journeys.providers.sandbox import SandboxConfig


# The workflow sandbox re-imports and checks the journeys' code for every run (a datetime.now() or
# an I/O call in a journey fails its workflow task). Passed through, imported once and shared,
# is only what holds data and no journey logic: pydantic, and the pure contract and model modules
# (rebuilding every pydantic model per run was most of a cached journey's memory and CPU).
# bench/ measures what the checks cost (`python -m bench`, "sandbox").
PASSED_THROUGH = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "durable_journeys.providers.base",
    "durable_journeys.providers.channels",
    "durable_journeys.activities.contracts",
    "durable_journeys.activities.masking",
    "durable_journeys.workflows.constants",
    "durable_journeys.workflows.models",
)
RESTRICTIONS = SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)
# A production worker also passes through the pack's own journeys and their engine (and runs them
# outside the sandbox when it runs nothing else: workflow_runner): re-importing them cost ~24 ms
# of CPU per run, a fifth of a journey's worker CPU (bench/README.md). They are
# checked where they are written: the test suite runs them under RESTRICTIONS and under the
# sandbox's defaults, so a datetime.now() or an I/O call in them fails CI. A shop's own journeys
# (JOURNEYS_JOURNEYS) are not in this package and stay checked in production.
PACK_JOURNEYS = ("durable_journeys.workflows",)
WORKER_RESTRICTIONS = RESTRICTIONS.with_passthrough_modules(*PACK_JOURNEYS)


def setup_logging(settings: Settings) -> None:
    """Configure logging as the settings say."""
    json = None if settings.log_format == "auto" else settings.log_format == "json"
    configure_logging(json=json, level=settings.log_level)


def sandbox_config(settings: Settings, *, webhook_url: str | None, **options: Any) -> SandboxConfig:
    """The sandbox service's configuration from the settings (its key, webhook secret, docs)."""
    from durable_journeys.providers.sandbox import SandboxConfig

    return SandboxConfig(
        api_key=settings.sandbox_api_key.get_secret_value(),
        webhook_secret=settings.sandbox_webhook_secret.get_secret_value(),
        webhook_url=webhook_url,
        docs=settings.docs_enabled,
        **options,
    )


def channel_chains(settings: Settings) -> dict[Channel, list[str]]:
    """The providers of each channel in order: ``routes``, the inbox for in-app, else ``default_provider``."""
    chains: dict[Channel, list[str]] = {}
    default = None if settings.default_provider == "none" else settings.default_provider
    for channel in registered_channels():
        names: list[str] = list(dict.fromkeys(settings.routes.get(channel, [])))  # in order, each once
        if not names:
            first = "inbox" if channel is Channel.IN_APP else default
            names = [first] if first else []
        if names:
            chains[channel] = names
    return chains


def channel_routes(settings: Settings) -> dict[Channel, str]:
    """The provider that sends each channel first."""
    return {channel: chain[0] for channel, chain in channel_chains(settings).items()}


def routed_providers(settings: Settings) -> dict[str, set[Channel]]:
    """The plug-in providers some channel may send through (first or as a failover), with those channels."""
    routed: dict[str, set[Channel]] = {}
    for channel, chain in channel_chains(settings).items():
        for name in chain:
            if name != "inbox":
                routed.setdefault(name, set()).add(channel)
    return routed


def provider_secrets(settings: Settings, *, webhooks: bool) -> tuple[str, ...]:
    """The sandbox secrets the worker (``webhooks=False``) or the webhook app needs, as routed."""
    if "sandbox" not in routed_providers(settings):
        return ()
    return ("sandbox_webhook_secret",) if webhooks else ("sandbox_api_key",)


def provider_problem(settings: Settings, *, webhooks: bool) -> str | None:
    """What keeps a routed provider from working (one line naming the setting), or None."""
    for name, routed in routed_providers(settings).items():
        plugin = provider_plugin(name)
        problem = plugin.problem(plugin.settings_from(settings), frozenset(routed), webhooks)
        if problem:
            return problem
    return None


def build_providers(
    settings: Settings,
    store: Store,
    *,
    clients: Mapping[str, Any] | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> ProviderRegistry:
    """Every routed provider, built by its plug-in, routed per channel (``routes``, ``default_provider``).

    The sandbox is always built (the development default), the in-app inbox with the store.

    Args:
        settings: the settings.
        store: the store (the inbox keeps in-app messages there).
        clients: clients to use instead of the real ones, by provider name (tests).
        http_client: the HTTP client of the HTTP providers (default: one without redirects).

    Raises:
        ConfigError: a routed provider lacks a setting or has an unusable one (one line naming it).
    """
    problem = provider_problem(settings, webhooks=False)
    if problem:
        raise ConfigError(problem)
    http = http_client or httpx.AsyncClient(timeout=settings.provider_timeout_seconds, follow_redirects=False)
    context = BuildContext(http=http, timeout=settings.provider_timeout_seconds, clients=dict(clients or {}))
    inbox = InboxProvider(store)
    providers: dict[str, Provider] = {inbox.name: inbox}
    for name in ["sandbox", *(n for n in routed_providers(settings) if n != "sandbox")]:
        plugin = provider_plugin(name)
        providers[name] = plugin.build(plugin.settings_from(settings), context)
    return ProviderRegistry(providers, routes=channel_chains(settings))


def send_queues(settings: Settings, task_queue: str | None = None) -> dict[str, tuple[str, float]]:
    """Provider name -> (its task queue, sends per second) for each routed provider with a fleet-wide rate.

    A provider's contracted rate is per account, and an SDK's limiter per process; the task
    queue's ``max_task_queue_activities_per_second`` holds across every worker polling it.
    """
    rates: dict[str, float] = {}
    for name in routed_providers(settings):
        plugin = provider_plugin(name)
        rate = settings.provider_sends_per_second.get(name) or plugin.sends_per_second(plugin.settings_from(settings))
        if rate:
            rates[name] = rate
    base = task_queue or settings.task_queue
    return {name: (f"{base}.{name}", rate) for name, rate in sorted(rates.items())}


class WorkerGroup:
    """The journeys' worker and one rate-limited send worker per provider queue, started and stopped together."""

    def __init__(self, workers: Sequence[Worker], *, before_stop: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run ``workers`` (the first is the journeys' own); ``before_stop`` is awaited before they stop."""
        self.workers = list(workers)
        self.before_stop = before_stop

    async def __aenter__(self) -> WorkerGroup:
        """Start every worker."""
        started: list[Worker] = []
        try:
            for worker in self.workers:
                await worker.__aenter__()
                started.append(worker)
        except BaseException:
            for worker in reversed(started):
                await worker.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        """Stop every worker, letting in-flight sends finish (graceful shutdown)."""
        if self.before_stop is not None:
            await self.before_stop()
        await asyncio.gather(*(w.__aexit__(*exc) for w in reversed(self.workers)))


@dataclass(frozen=True)
class _ValidatedOnce(SandboxedWorkflowRunner):
    """The sandbox, checking each journey class at worker start once per process and restrictions.

    The check imports the journey's module in a fresh sandbox. A journey does not change within a
    process, and every new worker (each test's) checked it again: about 0.15 s of CPU a worker.
    """

    def prepare_workflow(self, defn: temporalio.workflow._Definition) -> None:
        key = (defn.cls, id(self.restrictions))
        if key not in _VALIDATED:
            super().prepare_workflow(defn)
            _VALIDATED.add(key)


_VALIDATED: set[tuple[type, int]] = set()


def workflow_runner(workflows: Sequence[type], *, check_pack_journeys: bool = False) -> WorkflowRunner:
    """The sandbox for ``workflows``: checked as in the tests, or as in production.

    In production the pack's own journeys are passed through (WORKER_RESTRICTIONS); a worker that
    runs only them runs them outside the sandbox, whose per-activation cost (a code string
    executed for each payload's serialization context) was a sixth of a journey's worker CPU
    (bench/README.md): passed through, they were no longer checked by it anyway. A worker with a
    shop's own journeys keeps the sandbox for them.
    """
    if check_pack_journeys:
        return _ValidatedOnce(restrictions=RESTRICTIONS)
    if all(w.__module__.startswith(f"{PACK_JOURNEYS[0]}.") for w in workflows):
        return UnsandboxedWorkflowRunner()
    return _ValidatedOnce(restrictions=WORKER_RESTRICTIONS)


def build_worker(
    client: Client,
    activities: SendActivities,
    *,
    task_queue: str = TASK_QUEUE,
    queues: Mapping[str, tuple[str, float]] | None = None,
    workflows: Sequence[type] = ALL_WORKFLOWS,
    graceful_shutdown: timedelta = timedelta(seconds=30),
    check_pack_journeys: bool = False,
    **worker_kwargs: Any,
) -> WorkerGroup:
    """Every journey and the send activity on ``task_queue``, plus a send worker per rate-limited provider.

    Args:
        client: the Temporal client.
        activities: the send activities.
        task_queue: the journeys' task queue.
        queues: :func:`send_queues`: provider -> (task queue, sends per second).
        workflows: the journeys to run.
        graceful_shutdown: how long in-flight sends may finish on shutdown.
        check_pack_journeys: re-import and check the pack's own journeys for every run, as the
            tests do (the default passes them through, checked once by the suite: see
            :func:`workflow_runner`).
        **worker_kwargs: passed to the journeys' ``Worker``.
    """
    worker_kwargs.setdefault("workflow_runner", workflow_runner(workflows, check_pack_journeys=check_pack_journeys))
    main = Worker(
        client,
        task_queue=task_queue,
        workflows=list(workflows),
        activities=[
            activities.send_message,
            activities.send_queues,
            activities.consent_clocks,
            activities.record_consent_notice,
            activities.assign_variant,
        ],
        graceful_shutdown_timeout=graceful_shutdown,
        **worker_kwargs,
    )
    senders = [
        Worker(
            client,
            task_queue=queue,
            activities=[activities.send_message],
            max_task_queue_activities_per_second=rate,
            graceful_shutdown_timeout=graceful_shutdown,
        )
        for queue, rate in (queues or {}).values()
    ]
    return WorkerGroup([main, *senders])


def journey_classes(settings: Settings) -> list[type[JourneyWorkflow]]:
    """The reference journeys and the shop's own (``JOURNEYS_JOURNEYS``), imported and checked.

    Raises:
        ConfigError: an entry whose module does not import, or that names no journey class (one line).
    """
    found: list[type[JourneyWorkflow]] = list(ALL_WORKFLOWS)
    for path in settings.journeys:
        module_name, _, name = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - ImportError, or an error in the shop's module: one line either way
            raise ConfigError(
                f"JOURNEYS_JOURNEYS names {path!r}, whose module does not import ({type(exc).__name__}); "
                "install the shop's package or put it on PYTHONPATH"
            ) from None
        journey = getattr(module, name, None)
        if not (isinstance(journey, type) and issubclass(journey, JourneyWorkflow)) or not hasattr(
            journey, "__temporal_workflow_definition"
        ):
            raise ConfigError(
                f"JOURNEYS_JOURNEYS names {path!r}, which is no journey: "
                "a @workflow.defn class extending JourneyWorkflow"
            )
        if journey not in found:
            taken = next((j for j in found if j.journey == journey.journey), None)
            if taken is not None:
                raise ConfigError(
                    f"JOURNEYS_JOURNEYS names {path!r}, whose journey name {journey.journey!r} another journey has"
                )
            found.append(journey)
    return found


def required_templates(workflows: Sequence[type[JourneyWorkflow]] = ALL_WORKFLOWS) -> dict[str, set[Channel]]:
    """Template code -> the channels the journeys send it on (from each journey's ``steps``)."""
    required: dict[str, set[Channel]] = {}
    for journey in workflows:
        for channels, code in journey.steps.values():
            required.setdefault(code, set()).update(channels)
    return required


def template_problems(
    settings: Settings, workflows: Sequence[type[JourneyWorkflow]] = ALL_WORKFLOWS
) -> tuple[TemplateRegistry | None, list[str]]:
    """The template files of ``settings`` loaded, and every problem with them (one line each)."""
    try:
        registry = load_templates(settings.templates_dir)
    except ConfigError as exc:
        return None, [str(exc)]
    policy = settings.policy()

    def decorate(body: str, channel: Channel, purpose: Any) -> str:
        return mark_advertising(body, channel, purpose, policy)

    return registry, check_templates(registry, decorate, required=required_templates(workflows))


def journey_templates(
    settings: Settings, workflows: Sequence[type[JourneyWorkflow]] = ALL_WORKFLOWS
) -> TemplateRegistry:
    """The template files of ``settings``, checked: what the worker and the starter send from.

    Raises:
        ConfigError: one line with the first problem (``journeys templates check`` lists them all).
    """
    registry, problems = template_problems(settings, workflows)
    if problems or registry is None:
        where = settings.templates_dir or PACKAGED_DIR
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(
            f"JOURNEYS_TEMPLATES_DIR ({where}): {problems[0]}{more}; `journeys templates check` lists every problem"
        )
    return registry


def build_activities(
    settings: Settings,
    store: Store,
    providers: ProviderRegistry,
    templates: TemplateRegistry | None = None,
    *,
    task_queue: str | None = None,
) -> SendActivities:
    """The send activities with their dependencies (and the rate-limited providers' queues)."""
    return SendActivities(
        store,
        providers,
        templates or journey_templates(settings),
        settings.policy(),
        send_queues={name: queue for name, (queue, _) in send_queues(settings, task_queue).items()},
        failover_after=settings.failover_after_attempts,
        receipt_grace=settings.receipt_grace_seconds,
    )
