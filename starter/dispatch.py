"""How events and starts reach journeys: one start path, routing by the journey classes' declarations.

``Journeys`` (``starter/journeys.py``) is built on it; its conveniences for the reference journeys
(``order_paid``, ``cart_updated`` ...) check their input and come here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import (
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from durable_journeys.activities import CustomerProfile, Store
from durable_journeys.activities.store import EventAdmission
from durable_journeys.starter.errors import InvalidInput, JourneyNotFound
from durable_journeys.starter.inputs import (
    CUSTOMER_ID_TYPE,
    Delivery,
    checked_event,
    journey_attributes,
    validated,
)
from durable_journeys.workflows import (
    ENGINE,
    ENGINE_MEMO,
    JourneyEvent,
    JourneyResult,
    JourneySettings,
    JourneyWorkflow,
    event_signal,
)

SIGNAL_WITH_START_ATTEMPTS = 3  # a signal-with-start that met a run continuing as new tries again
StartCheck = Callable[[str, JourneyEvent, CustomerProfile | None], Awaitable[None]]


class JourneyDispatch:
    """Starting, signalling and routing journeys as their classes declare (``starts_on``, ``listens_to`` ...)."""

    client: Client
    store: Store
    task_queue: str
    journey_classes: list[type[JourneyWorkflow]]
    journey_settings: dict[type[JourneyWorkflow], JourneySettings]
    # The facade's own checks before a journey starts from an event (the reference journeys' input),
    # given the customer's profile when the caller has it at hand (else None: the check reads it).
    _start_checks: dict[type[JourneyWorkflow], StartCheck]

    async def emit(self, customer_id: str, event: JourneyEvent | Mapping[str, Any]) -> int:
        """Route a customer event to every journey of the customer that cares; returns how many got it.

        Each journey class declares what it hears (``listens_to``, ``exit_events``): ``purchase``,
        ``cart.*`` and ``message.*`` reach the cart journey, ``app.*`` the customer's care
        journeys, ``order.shipped``/``order.delivered`` naming one of the customer's orders its
        post-purchase journey; ``unsubscribed`` updates the profile. A journey that starts on the
        event (``starts_on``) and has no run going on is started, with the input it makes of the
        event (``start_input``), and counted. ``data`` must fit the event type (``workflows.EVENT_DATA``).

        Raises:
            InvalidInput: the customer id, the event or its data is malformed.
        """
        customer_id = validated(CUSTOMER_ID_TYPE, customer_id, "customer_id")
        return await self._emit(customer_id, checked_event(event))

    async def _emit(self, customer_id: str, event: JourneyEvent) -> int:
        delivered = await self._deliver(customer_id, event)
        return delivered + await self._start_triggered(customer_id, event)  # whatever the event's type

    async def _deliver(self, customer_id: str, event: JourneyEvent) -> int:
        """What ``event`` does to the customer's running journeys; how many got it (the facade adds its own)."""
        return await self._route(customer_id, event)

    async def _start_triggered(self, customer_id: str, event: JourneyEvent) -> int:
        """Start (or feed, by signal-with-start) each journey that ``event`` starts; how many got it."""
        started = 0
        for journey in self.journey_classes:
            if event.type not in journey.starts_on:
                continue
            try:
                started += await self._start_on(journey, customer_id, event) is not None
            except WorkflowAlreadyStartedError:
                continue  # once_per_key, and a run has been
        return started

    async def _start_on(
        self,
        journey: type[JourneyWorkflow],
        customer_id: str,
        event: JourneyEvent,
        *,
        profile: CustomerProfile | None = None,
    ) -> WorkflowHandle[Any, Any] | None:
        """The run of ``journey`` that ``event`` starts, as the journey declares it; None: none started.

        The journey's input and key come from its ``start_input`` and ``start_key``. If it also hears
        the event, the start is a signal-with-start (a run going on gets the event instead); if not,
        a run going on is left alone. ``once_per_key``: a run that has ended is not started again
        (``WorkflowAlreadyStartedError``). ``profile``: the customer's, if the caller has just saved it.
        """
        check = self._start_checks.get(journey)
        if check is not None:
            await check(customer_id, event, profile)
        inp = journey.start_input(customer_id, event, self.settings_for(journey))
        if inp is None:
            return None
        workflow_id = f"{journey.journey}:{journey.start_key(customer_id, event)}"
        hears = journey.hears(event.type)
        if not hears and await self._running(workflow_id):
            return None  # a run is going on, and the event is not for it
        return await self._start(
            journey,
            inp,
            customer_id=customer_id,
            workflow_id=workflow_id,
            event=event if hears else None,
            once=journey.once_per_key,
        )

    def settings_for(self, journey: type[JourneyWorkflow]) -> JourneySettings | None:
        """The settings ``journey`` starts with (``journey_settings``'s), or None."""
        return self.journey_settings.get(journey)

    async def _route(self, customer_id: str, event: JourneyEvent) -> int:
        """Signal ``event`` to every running journey of the customer whose class hears it; how many got it.

        A journey that starts on the event is left out: its start (a signal-with-start) delivers it.
        """
        hearing = [j for j in self.journey_classes if j.hears(event.type) and event.type not in j.starts_on]
        if not hearing:
            return 0
        # The customer's orders are read only for a journey run per order (care): a purchase
        # routed to the cart and win-back journeys costs no query.
        per_order = any(j.workflow_ids.__func__ is not JourneyWorkflow.workflow_ids.__func__ for j in hearing)  # type: ignore[attr-defined]
        orders = await self.store.customer_orders(customer_id) if per_order else []
        delivered = 0
        for journey in hearing:
            for workflow_id in journey.workflow_ids(customer_id, orders, event):
                delivered += bool(await self._signal_if_running(workflow_id, event))
        return delivered

    async def start_journey(
        self,
        journey: type[JourneyWorkflow],
        inp: BaseModel,
        *,
        customer_id: str,
        key: str | None = None,
        event: JourneyEvent | Mapping[str, Any] | None = None,
        stage: str | None = None,
        once: bool | None = None,
    ) -> WorkflowHandle[Any, Any]:
        """Start any registered journey for a customer; a running one is returned (and gets ``event``).

        The workflow id is ``{journey}:{key}`` (default key: the customer id), the journey's
        search attributes are set, and with ``event`` the start is a signal-with-start: the event
        reaches the run whether it was just started or already running. With ``once`` (default:
        the journey's ``once_per_key``), a run whose id has been used before is not started again
        (``WorkflowAlreadyStartedError``). ``stage`` defaults to the journey's ``start_stage``. A
        journey of your own needs no facade code of its own; one that declares ``starts_on`` is
        started by :meth:`emit` (and ``POST /events``) through the same path, as are the reference
        journeys by the conveniences (``order_paid``, ``cart_updated``, ``customer_active``).

        Raises:
            InvalidInput: the customer id, key or event is malformed, or the journey is not registered.
        """
        customer_id = validated(CUSTOMER_ID_TYPE, customer_id, "customer_id")
        key = customer_id if key is None else validated(CUSTOMER_ID_TYPE, key, "key")
        if journey not in self.journey_classes:
            raise InvalidInput(
                "journey", [f"{journey.__name__} is not registered: pass it as Journeys(journeys=[...])"]
            )
        return await self._start(
            journey,
            inp,
            customer_id=customer_id,
            workflow_id=f"{journey.journey}:{key}",
            event=None if event is None else checked_event(event),
            stage=stage,
            once=journey.once_per_key if once is None else once,
        )

    async def _start(
        self,
        journey: type[JourneyWorkflow],
        inp: BaseModel,
        *,
        customer_id: str,
        workflow_id: str,
        event: JourneyEvent | None = None,
        stage: str | None = None,
        once: bool = False,
        summary: str | None = None,
    ) -> WorkflowHandle[Any, Any]:
        """The one way every journey starts: the facade's conveniences, ``start_journey`` and ``emit``.

        With ``event``, a signal-with-start (a run going on gets the event; one with an ``event_id``
        this journey was told before is dropped here); without, a run going on is returned. The
        journey's search attributes and its summary in the UI are set from its declaration.
        """
        options: dict[str, Any] = {"memo": {ENGINE_MEMO: ENGINE}}  # the engine generation the run takes
        if event is not None:
            if event.event_id is not None and await self.store.event_seen(workflow_id, event.event_id):
                return self.client.get_workflow_handle(workflow_id, result_type=JourneyResult)  # seen: dropped
            options |= {"start_signal": event_signal(event), "start_signal_args": [event]}
        else:
            options["id_conflict_policy"] = WorkflowIDConflictPolicy.USE_EXISTING
        if once:
            options["id_reuse_policy"] = WorkflowIDReusePolicy.REJECT_DUPLICATE
        summary = summary or journey.start_summary
        if summary:
            options["static_summary"] = summary
        # A journey told not to write its stage (stage_search) shows none in the list, rather than a stale one.
        settings = getattr(inp, "settings", None)
        searched = not isinstance(settings, JourneySettings) or settings.stage_search
        stage = (stage or journey.start_stage) if searched else None
        attributes = journey_attributes(customer_id, journey.journey, stage)
        for attempt in range(SIGNAL_WITH_START_ATTEMPTS):
            try:
                handle = await self.client.start_workflow(
                    journey.run,  # type: ignore[attr-defined]
                    inp,
                    id=workflow_id,
                    task_queue=self.task_queue,
                    search_attributes=attributes,
                    **options,
                )
                break
            except (RPCError, WorkflowAlreadyStartedError) as exc:
                # A signal-with-start while the run was continuing as new ("completed workflow"), or
                # while a concurrent one won the race to start it (the time-skipping server answers
                # so): nothing was signalled, and the next attempt reaches the run.
                retry = event is not None and not once
                retry = retry and (
                    isinstance(exc, WorkflowAlreadyStartedError) or exc.status is RPCStatusCode.NOT_FOUND
                )
                if not retry or attempt + 1 == SIGNAL_WITH_START_ATTEMPTS:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        if event is not None and event.event_id is not None:
            await self.store.remember_event(workflow_id, event.event_id)
        return handle

    async def signal_journey(
        self, journey: type[JourneyWorkflow], event: JourneyEvent | Mapping[str, Any], *, key: str
    ) -> Delivery:
        """Signal ``event`` to the run of ``journey`` with id ``{journey}:{key}`` (see :class:`Delivery`).

        Raises:
            InvalidInput: the key or the event is malformed.
        """
        key = validated(CUSTOMER_ID_TYPE, key, "key")
        return await self._signal_if_running(f"{journey.journey}:{key}", checked_event(event))

    async def signal_event(self, workflow_id: str, event: JourneyEvent) -> Delivery:
        """Deliver an event to one journey.

        Returns:
            ``Delivery.DELIVERED`` (true) if a running journey got it; otherwise (false) why not:
            ``DUPLICATE`` (that event id reached the running journey before), ``LIMITED`` (the
            journey took as many events of this type as it can use) or ``ENDED``.

        Raises:
            JourneyNotFound: no journey with that id was ever started.
        """
        delivery = await self._signal_if_running(workflow_id, event)
        if delivery is Delivery.ENDED:
            await self._describe_or_not_found(workflow_id)  # ended, or never started?
        return delivery

    async def _signal_if_running(self, workflow_id: str, event: JourneyEvent) -> Delivery:
        """Signal a journey; what became of the event (see :class:`Delivery`).

        An event whose id this journey was already signalled is dropped here, and so is one of a
        type the journey has taken as many of as it can use (``JourneyWorkflow.event_limit``):
        neither reaches history, which has a size limit, whatever ids a caller makes up.
        """
        event_id = event.event_id
        journey = self._journey_of(workflow_id)
        limit = journey.event_limit(event.type) if journey is not None else None
        # A journey whose id later runs reuse counts per day; any other, over its one run.
        bucket = datetime.now(UTC).strftime("%Y-%m-%d") if journey and journey.reuses_workflow_id else ""
        admission = await self.store.admit_event(workflow_id, event_id, event.type.value, limit=limit, bucket=bucket)
        if admission is not EventAdmission.ADMITTED:
            if not await self._running(workflow_id):
                return Delivery.ENDED
            return Delivery.DUPLICATE if admission is EventAdmission.SEEN else Delivery.LIMITED
        try:
            await self.client.get_workflow_handle(workflow_id).signal(event_signal(event), event)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return Delivery.ENDED
            raise
        if event_id is not None:
            await self.store.remember_event(workflow_id, event_id)
        return Delivery.DELIVERED

    def _journey_of(self, workflow_id: str) -> type[JourneyWorkflow] | None:
        """The registered journey class whose ids look like ``workflow_id`` (``{journey}:...``)."""
        name = workflow_id.split(":", 1)[0]
        return next((j for j in self.journey_classes if j.journey == name), None)

    async def _running(self, workflow_id: str) -> bool:
        """Whether a run of ``workflow_id`` is running now (False: ended, or never started)."""
        return await self._status(workflow_id) is WorkflowExecutionStatus.RUNNING

    async def _status(self, workflow_id: str) -> WorkflowExecutionStatus | None:
        """The status of the latest run of ``workflow_id`` (None: no journey with this id was ever started)."""
        try:
            return (await self.client.get_workflow_handle(workflow_id).describe()).status
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def _describe_or_not_found(self, workflow_id: str) -> None:
        """Raise ``JourneyNotFound`` unless a journey with this id was ever started."""
        if await self._status(workflow_id) is None:
            raise JourneyNotFound(f"no journey {workflow_id!r}")
