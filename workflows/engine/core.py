"""The journey's core: its declaration (what it listens to, its steps, its limits), its state, stages, timeline and end.

The engine is layered, each layer a class in a module of its own that uses the ones below it:
``core`` <- ``intake`` (signals, queries) <- ``waiting`` (timers, events, receipts) <- ``attempts``
(one channel's send through outages, deferrals, reconciling) <- ``sending`` (a step's channels:
fallback, gateway) <- ``splits`` (experiments) <- ``operators`` (Updates). ``workflows.steps.JourneyWorkflow``
is the top: the base of every journey.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, NoReturn

from pydantic import BaseModel
from temporalio import workflow

from durable_journeys.activities.contracts import (
    UNKNOWN_CUSTOMER,
    Channel,
    DeliveryReceipt,
)

# Only the metrics counter (a side effect outside replay, never a command) comes through the
# sandbox unchecked: activities are scheduled by name (activities/contracts.py).
with workflow.unsafe.imports_passed_through():
    from durable_journeys.activities.metrics import count_journey

from durable_journeys.workflows.constants import ENGINE, ENGINE_MEMO, JOURNEY_STAGE
from durable_journeys.workflows.models import (
    EventType,
    JourneyEvent,
    JourneyResult,
    JourneySettings,
    JourneyState,
    OperatorAction,
    Outcome,
    TimelineEntry,
)

SKIP_TIMER = "the next step starts now"
SEND_START_TO_CLOSE = timedelta(seconds=30)  # one attempt of the send activity
# Bounds on what a run keeps, whatever arrives (docs/architecture.md §8a): events beyond these
# are dropped before they reach the journey's state, and the timeline stops growing with them.
MAX_TIMELINE_EVENTS = 500  # event and ignored entries in a run's timeline
MAX_RECEIPTS = 500  # receipts a run keeps (one per message it sent, in any real journey)


@dataclass
class Alarm:
    """A timer the run keeps (engine 4): it fires at ``at``, and waits that end no earlier share it."""

    at: datetime
    task: asyncio.Task[None]


class NewerEngine(RuntimeError):
    """A run started by a newer release than this worker's: its workflow task fails and is retried."""


class JourneyExit(Exception):
    """An exit event (cancelled order, purchase ...) or an operator's ``exit`` ended the journey.

    ``event`` is the exit event (None for an operator's exit); ``reason`` what ended it
    (the event type, or ``operator``).
    """

    def __init__(self, event: JourneyEvent | None, reason: str | None = None) -> None:
        self.reason = reason or (event.type.value if event is not None else "exit")
        super().__init__(self.reason)
        self.event = event


class JourneyCore:
    """What every journey is and keeps: declaration, state, stage, timeline, end."""

    journey: ClassVar[str] = "journey"
    # Events this journey reads (besides exit_events): the facade's emit() routes a customer's
    # event to every journey that listens to it or exits on it, and to no other.
    listens_to: ClassVar[frozenset[EventType]] = frozenset()
    # step -> (its channels in order, its template code): what the worker checks the template
    # files against at start, so a missing template or channel text stops the worker, not a journey.
    steps: ClassVar[Mapping[str, tuple[tuple[Channel, ...], str]]] = {}
    exit_events: ClassVar[frozenset[EventType]] = frozenset()
    # A journey whose workflow id is reused by later runs (the cart) scopes its idempotency
    # keys to the run chain, so a new run's messages are not mistaken for the last run's.
    reuses_workflow_id: ClassVar[bool] = False
    # How many events of one type a run takes (the facade signals no more: per run, or per day
    # for a journey whose id is reused); later ones are dropped. Types in ``many_events`` a
    # journey takes without a count, because it continues as new when its history grows (the
    # cart's updates, win-back's activity).
    max_events_per_type: ClassVar[int] = 20
    many_events: ClassVar[frozenset[EventType]] = frozenset()

    # How the journey starts itself from a customer's event (the facade's emit(), POST /events, the
    # kit's emit, and the facade's conveniences such as cart_updated()): the event types that start
    # a run, the run's input from the event (start_input; None: this event starts none) and its
    # key (id ``{journey}:{key}``). A journey that also hears the event is started by
    # signal-with-start, so a run going on gets it instead; one that does not is not started again
    # while a run goes on. With ``once_per_key``, a run that has ended is not started again either.
    starts_on: ClassVar[frozenset[EventType]] = frozenset()
    once_per_key: ClassVar[bool] = False
    # What the run shows until it first waits: its JourneyStage and its summary in the UI's list.
    start_stage: ClassVar[str] = "started"
    start_summary: ClassVar[str] = ""

    @classmethod
    def start_input(cls, customer_id: str, event: JourneyEvent, settings: JourneySettings | None) -> BaseModel | None:
        """The input of the run ``event`` starts (an event in ``starts_on``); None: it starts none.

        ``settings``: the facade's settings for this journey (``Journeys(journey_settings=...)``;
        a reference journey's own argument, such as ``cart=``), None if it was given none.
        """
        return None

    @classmethod
    def start_key(cls, customer_id: str, event: JourneyEvent) -> str:
        """The key of the run ``event`` starts: its workflow id is ``{journey}:{key}`` (default: the customer)."""
        return customer_id

    @classmethod
    def workflow_ids(cls, customer_id: str, orders: Sequence[str], event: JourneyEvent) -> list[str]:
        """The ids of this journey's runs that ``event`` of ``customer_id`` is for (the facade signals them).

        By default one run per customer, ``{journey}:{customer_id}``; a journey per order overrides it.

        Args:
            customer_id: the customer.
            orders: the customer's recent order ids, newest first.
            event: the event being routed.
        """
        return [f"{cls.journey}:{customer_id}"]

    @classmethod
    def event_limit(cls, event_type: EventType) -> int | None:
        """How many events of ``event_type`` one run can use (None: no count; the journey continues as new)."""
        return None if event_type in cls.many_events else cls.max_events_per_type

    @classmethod
    def hears(cls, event_type: EventType) -> bool:
        """Whether this journey reads events of ``event_type`` (listens to them, or exits on them)."""
        return event_type in cls.listens_to or event_type in cls.exit_events

    # The model of this journey's state (a subclass of JourneyState for a journey with state of its own).
    state_model: ClassVar[type[JourneyState]] = JourneyState
    # What continue-as-new carries of the timeline and of the event ids seen (duplicates ignored).
    carried_timeline: ClassVar[int] = 200
    carried_event_ids: ClassVar[int] = 500

    def __init__(self, state: JourneyState | None = None) -> None:
        """``state``: what the last run carried over continue-as-new (None: a journey's first run)."""
        # Everything the story and the operators' tools build up, in one serialisable structure.
        self.state: JourneyState = state if state is not None else self.state_model()
        # In flight only: a run ends or continues as new once these are settled.
        self._events: list[JourneyEvent] = []
        self._consumed: set[int] = set()
        self._receipts: dict[str, DeliveryReceipt] = {}
        self._closed_keys: set[str] = set()
        self._exit: JourneyEvent | None = None
        self._reentry_cooldown: timedelta | None = None
        self._send_timeout = SEND_START_TO_CLOSE
        defaults = JourneySettings()  # until run_story() sets the journey's own
        self._send_deadline: timedelta | None = defaults.send_deadline
        self._unknown_window = defaults.unknown_window
        self._stage: str | None = None  # not yet in JourneyStage (see stage())
        self._send_queues: dict[Channel, str] | None = None  # asked once a run, see _queue_for
        self._gateway_keys: dict[str, str] = {}  # key -> step of gateway sends awaiting their receipt
        self._settings = JourneySettings()
        # Operators: what the journey waits for now, a skip of that wait, an exit, resends.
        self._waiting: str | None = None
        self._skip = False
        self._skipped = False  # the last wait ended by skip_wait
        self._operator_exit: OperatorAction | None = None
        self._ended = False
        self._resend_keys: dict[str, str] = {}  # key -> step of a resend awaiting its receipt
        self._on_skip: str | None = None  # what a skip_wait of the current wait does
        self._waiting_for: frozenset[EventType] = frozenset()  # events the current wait ends on
        self._engine: int | None = None  # see engine
        self._alarms: list[Alarm] = []  # running timers the run's waits share (engine 4, see waiting)

    # journey bookkeeping ---------------------------------------------------------------------

    def stage(self, name: str) -> None:
        """Show the journey's stage in the UI: current details at once, ``JourneyStage`` when it lasts.

        The search attribute is written when the journey next waits for an event or a timer
        (and when it ends), not for stages it passes through in one go: each upsert is a
        history event, a billed action and a visibility write (see bench/README.md). Name a
        stage by what the journey waits for next.
        """
        self.state.stage = name
        if self.state.customer_unknown:  # visible until a send finds the customer
            workflow.set_current_details(f"{self.journey}: {name}; customer unknown to the store")
            self._stage = UNKNOWN_CUSTOMER
            return
        workflow.set_current_details(f"{self.journey}: {name}")
        self._stage = name

    @property
    def engine(self) -> int:
        """The engine generation this run started with (``ENGINE_MEMO``; 1 for runs started before 1.1)."""
        if self._engine is None:
            engine = int(workflow.memo_value(ENGINE_MEMO, 1, type_hint=int))
            if engine > ENGINE:
                # Not an ApplicationError: this fails the workflow task, not the run, and Temporal
                # retries it until a worker that knows the generation takes it.
                raise NewerEngine(
                    f"this run takes engine generation {engine} and this worker knows up to {ENGINE}: "
                    "deploy the newer workers before the apps that start journeys"
                )
            self._engine = engine
        return self._engine

    def _publish_stage(self) -> None:
        """Write the pending stage to ``JourneyStage`` if it differs from what is there (and stages are searched)."""
        if not self._settings.stage_search or self._stage is None:
            return
        if workflow.info().typed_search_attributes.get(JOURNEY_STAGE) != self._stage:
            workflow.upsert_search_attributes([JOURNEY_STAGE.value_set(self._stage)])

    async def run_story(self, customer_id: str, settings: JourneySettings, story: object) -> JourneyResult:
        """Run a journey's story coroutine with its send settings; an exit event ends it cleanly."""
        self.state.customer_id = customer_id
        try:
            _ = self.engine  # a run of a newer generation than this worker's goes no further
        except NewerEngine:
            getattr(story, "close", lambda: None)()  # the story never started
            raise
        self._settings = settings
        self._send_timeout = settings.send_timeout
        self._send_deadline = settings.send_deadline
        self._unknown_window = settings.unknown_window
        if not workflow.unsafe.is_replaying() and workflow.info().continued_run_id is None:
            count_journey(self.journey, "started")
        try:
            outcome = await story  # type: ignore[misc]
            if outcome is None:  # a story that returns nothing ran to its end
                outcome = "completed"
        except JourneyExit as exc:
            outcome = "exited:operator" if exc.event is None else f"exited:{exc.reason}"
            self.stage("exited")
            self._record("journey", Outcome.ENDED, None, f"ended by {exc.reason}")
        else:
            self.stage(str(outcome))
            self._record("journey", Outcome.ENDED, None, str(outcome))
        self._ended = True
        await self.until_handlers_finished()
        self._publish_stage()
        if not workflow.unsafe.is_replaying():
            count_journey(self.journey, "exited" if str(outcome).startswith("exited") else "completed")
        return JourneyResult(journey=self.journey, outcome=str(outcome), timeline=self.state.timeline)

    async def continue_as_new(self, inp: BaseModel) -> NoReturn:
        """Continue as new with ``inp`` (a journey input with a ``state`` field) and the state carried.

        Operators' Updates still running (a resend) finish first.
        """
        await self.until_handlers_finished()
        state = self.state.carried(timeline=self.carried_timeline, event_ids=self.carried_event_ids)
        workflow.continue_as_new(inp.model_copy(update={"state": state}), memo={ENGINE_MEMO: ENGINE})

    def _episode(self) -> str | None:
        return workflow.info().first_execution_run_id if self.reuses_workflow_id else None

    def _raise_if_exited(self) -> None:
        if self._operator_exit is not None:
            raise JourneyExit(None, f"operator {self._operator_exit.operator}")
        if self._exit is not None:
            raise JourneyExit(self._exit)

    def _exiting(self) -> bool:
        return self._exit is not None or self._operator_exit is not None

    async def until_handlers_finished(self) -> None:
        """Wait for operators' Updates still running (a resend) before the run ends or continues as new."""
        await workflow.wait_condition(workflow.all_handlers_finished)

    def _record(self, step: str, outcome: Outcome, channel: Channel | None = None, detail: str | None = None) -> None:
        if outcome in (Outcome.EVENT, Outcome.IGNORED):
            if self.state.timeline_events >= MAX_TIMELINE_EVENTS:
                return  # what a journey sends is bounded by its story; what it is told, here
            self.state.timeline_events += 1
        now = workflow.now()
        self.state.timeline.append(
            TimelineEntry(
                step=step,
                at=now,
                elapsed=now - workflow.info().workflow_start_time,
                outcome=outcome,
                channel=channel,
                detail=detail,
            )
        )

    def _step_of(self, key: str) -> str:
        return key.rsplit(":", 2)[-2]
