"""Reusable durable steps journeys are written from (docs/architecture.md §5).

:class:`JourneyWorkflow` is the base of every journey. It owns the signals ``receipt`` and
``event``, the query ``timeline``, and the steps:

- :meth:`JourneyWorkflow.send_with_fallback`: first channel that delivers wins, the rest are
  never sent; late receipts are recorded, never acted on.
- :meth:`JourneyWorkflow.wait_for`: an event or ``None`` on timeout; buffered, so events that
  arrive early are not lost.
- :meth:`JourneyWorkflow.delay` / :meth:`JourneyWorkflow.delay_until`: durable timers with a
  summary shown in the Temporal UI.

Every wait ends early when an exit event (``exit_events``) arrives, raising :class:`JourneyExit`;
and no send starts after one arrived.

Operators steer a running journey with three validated Updates (each takes who and why, and is
recorded in the timeline): ``skip_wait`` ends the current wait now, ``exit`` ends the journey,
``resend`` sends a step again under a new idempotency key linked to the first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, ClassVar, Literal

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from durable_journeys.activities import (
        CONFIG_ERROR,
        CUSTOMER_SKIPS,
        KST,
        OUTCOME_UNKNOWN,
        UNKNOWN_CUSTOMER,
        Channel,
        DeliveryReceipt,
        OutcomeStatus,
        Purpose,
        ReceiptMode,
        ReceiptStatus,
        SendActivities,
        SendOutcome,
        SendRequest,
        idempotency_key,
    )
    from durable_journeys.activities.logs import mask
    from durable_journeys.activities.metrics import count_journey

from durable_journeys.workflows.constants import JOURNEY_STAGE
from durable_journeys.workflows.models import (
    EventType,
    JourneyEvent,
    JourneyResult,
    JourneySettings,
    OperatorAction,
    Outcome,
    ResendAction,
    SkipAction,
    StepResult,
    TimelineEntry,
    WaitInfo,
)

SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=[CONFIG_ERROR],
)
SEND_START_TO_CLOSE = timedelta(seconds=30)
# One round of activity retries lasts this long; between rounds the journey waits on a durable
# timer (shown in the timeline and the UI), doubling up to OUTAGE_MAX_PAUSE. The
# schedule-to-close timeout is no part of the command sequence checked on replay, so changing it
# needs no patch.
SEND_ROUND = timedelta(minutes=10)
# Before a run's first send (and after a failed round), a local activity names the task queue of
# each channel whose provider is rate-limited fleet-wide; sends on that channel are scheduled there.
ROUTE_TIMEOUT = timedelta(seconds=10)
SKIP_TIMER = "the next step starts now"
OUTAGE_FIRST_PAUSE = timedelta(minutes=1)
# Bounds on what a run keeps, whatever arrives (docs/architecture.md §8a): events beyond these
# are dropped before they reach the journey's state, and the timeline stops growing with them.
MAX_TIMELINE_EVENTS = 500  # event and ignored entries in a run's timeline
MAX_RECEIPTS = 500  # receipts a run keeps (one per message it sent, in any real journey)
OUTAGE_MAX_PAUSE = timedelta(minutes=30)


@dataclass(frozen=True)
class CapRule:
    """What a step does with an ad over a frequency cap (see ``send_with_fallback``)."""

    on_cap: Literal["skip", "defer"] = "skip"
    defer_until: datetime | None = None


class JourneyExit(Exception):
    """An exit event (cancelled order, purchase ...) or an operator's ``exit`` ended the journey.

    ``event`` is the exit event (None for an operator's exit); ``reason`` what ended it
    (the event type, or ``operator``).
    """

    def __init__(self, event: JourneyEvent | None, reason: str | None = None) -> None:
        self.reason = reason or (event.type.value if event is not None else "exit")
        super().__init__(self.reason)
        self.event = event


def event_signal(event: JourneyEvent) -> str:
    """The name a business event is signalled under: its type (``order.shipped``), readable in the UI."""
    return event.type.value


def receipt_signal(receipt: DeliveryReceipt) -> str:
    """The name a delivery receipt is signalled under, readable in the UI: ``receipt alimtalk delivered``."""
    return f"receipt {receipt.channel!s} {receipt.status!s}"[:100]


class JourneyWorkflow:
    """Base of every journey workflow: signals, query and durable steps.

    Signals: events under their type's name (``order.shipped``, see :func:`event_signal`),
    receipts as ``receipt {channel} {status}`` (:func:`receipt_signal`); any other name is read
    as an event. Queries: ``timeline()``, ``waiting()``. Updates: ``skip_wait``, ``exit``,
    ``resend`` (operators; validated, recorded in the timeline).
    """

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

    def __init__(self) -> None:
        self._events: list[JourneyEvent] = []
        self._consumed: set[int] = set()
        self._event_ids: dict[str, None] = {}  # insertion-ordered: deterministic to carry over
        self._receipts: dict[str, DeliveryReceipt] = {}
        self._closed_keys: set[str] = set()
        self._timeline: list[TimelineEntry] = []
        self._exit: JourneyEvent | None = None
        self._customer_id = ""
        self._reentry_cooldown: timedelta | None = None
        self._send_timeout = SEND_START_TO_CLOSE
        defaults = JourneySettings()  # until run_story() sets the journey's own
        self._send_deadline: timedelta | None = defaults.send_deadline
        self._unknown_window = defaults.unknown_window
        self._stage: str | None = None  # not yet in JourneyStage (see stage())
        self._customer_unknown = False  # the last send found no profile
        self._stage_name = "started"  # the story's current stage, as last given to stage()
        self._send_queues: dict[Channel, str] | None = None  # asked once a run, see _queue_for
        self._gateway_keys: dict[str, str] = {}  # key -> step of gateway sends awaiting their receipt
        self._settings = JourneySettings()
        # Operators: what the journey waits for now, a skip of that wait, an exit, resends.
        self._waiting: str | None = None
        self._skip = False
        self._skipped = False  # the last wait ended by skip_wait
        self._operator_exit: OperatorAction | None = None
        self._ended = False
        self._sent_steps: dict[str, tuple[str, dict[str, str], Purpose, list[str]]] = {}  # step -> what, keys
        self._resend_keys: dict[str, str] = {}  # key -> step of a resend awaiting its receipt
        self._resends: dict[str, int] = {}  # step -> resends so far (numbers their keys)
        self._event_counts: dict[EventType, int] = {}  # events taken this run, by type
        self._on_skip: str | None = None  # what a skip_wait of the current wait does
        self._waiting_for: frozenset[EventType] = frozenset()  # events the current wait ends on
        self._timeline_events = 0  # event and ignored entries in the timeline

    # signals and query ------------------------------------------------------------------------

    def on_receipt(self, receipt: DeliveryReceipt) -> None:
        """A provider's delivery receipt; duplicates are ignored, late ones recorded. Never raises."""
        try:
            self._take_receipt(receipt)
        except Exception as exc:  # noqa: BLE001 - no input may fail a workflow task (docs/architecture.md §8a)
            self._record("receipt", Outcome.IGNORED, None, f"unusable receipt ({type(exc).__name__})")

    def _take_receipt(self, receipt: DeliveryReceipt) -> None:
        key = receipt.idempotency_key
        if not key or key in self._receipts or len(self._receipts) >= MAX_RECEIPTS:
            return
        self._receipts[key] = receipt
        # A send nobody waits for: an operator's resend, or a gateway chain (its receipt names the channel).
        for tracked, delivered_detail, failed_detail in (
            (self._resend_keys, "resend", "resend"),
            (self._gateway_keys, "gateway fallback", "gateway fallback exhausted"),
        ):
            if key in tracked:
                delivered = receipt.status is ReceiptStatus.DELIVERED
                self._record(
                    tracked.pop(key),
                    Outcome.DELIVERED if delivered else Outcome.FAILED,
                    receipt.channel,
                    delivered_detail if delivered else f"{receipt.error_code}; {failed_detail}",
                )
                return
        if key in self._closed_keys:
            self._record(
                self._step_of(key),
                Outcome.LATE_RECEIPT,
                receipt.channel,
                f"{receipt.status.value} after the step moved on; nothing resent",
            )

    def on_event(self, event: JourneyEvent) -> None:
        """A business event; one with an ``event_id`` already seen is ignored.

        Never raises: an event whose data the journey cannot read is recorded in the timeline as
        ``ignored`` and changes nothing, so no input can fail the journey's workflow tasks. Past
        :meth:`event_limit` events of its type, an event is dropped (the first one dropped is
        recorded).
        """
        try:
            self._take_event(event)
        except Exception as exc:  # noqa: BLE001 - no input may fail a workflow task (docs/architecture.md §8a)
            self._record(str(event.type)[:100], Outcome.IGNORED, None, f"unusable event ({type(exc).__name__})")

    def _take_event(self, event: JourneyEvent) -> None:
        if event.event_id and event.event_id in self._event_ids:
            return
        limit = self.event_limit(event.type)
        taken = self._event_counts.get(event.type, 0)
        if limit is not None and taken >= limit:
            if taken == limit:  # recorded once: the timeline stays bounded too
                self._record(event.type.value, Outcome.IGNORED, None, f"more than {limit} events of this type")
                self._event_counts[event.type] = taken + 1
            return
        # Stamp journey time: "3 days after delivery" counts from here, even if the journey
        # was busy with another step when the event came.
        event = event.model_copy(update={"received_at": workflow.now()})
        try:
            self.on_event_received(event)
        except (ValueError, TypeError, LookupError) as exc:  # pydantic's ValidationError is a ValueError
            self._record(event.type.value, Outcome.IGNORED, None, f"unreadable data ({type(exc).__name__})")
            return
        if event.event_id:
            self._event_ids[event.event_id] = None
        self._event_counts[event.type] = taken + 1
        self._events.append(event)
        self._record(event.type.value, Outcome.EVENT)
        if event.type in self.exit_events and self._exit is None:
            self._exit = event

    @workflow.signal(dynamic=True)
    def on_named_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """Events and receipts under readable names (``order.shipped``, ``receipt sms delivered``).

        The name is a label for people reading the event history; the payload decides. Never
        raises: a payload that cannot be read is recorded as ``ignored`` (no payload text).
        """
        receipt = name.startswith("receipt")
        try:
            if len(args) != 1:
                raise ValueError("one argument expected")
            model = DeliveryReceipt if receipt else JourneyEvent
            value = workflow.payload_converter().from_payload(args[0].payload, model)
        except (ValueError, TypeError, LookupError, ValidationError, RuntimeError) as exc:
            self._record(name[:100], Outcome.IGNORED, None, f"unreadable signal ({type(exc).__name__})")
            return
        if isinstance(value, DeliveryReceipt):
            self.on_receipt(value)
        elif isinstance(value, JourneyEvent):
            self.on_event(value)  # both never raise

    def on_event_received(self, event: JourneyEvent) -> None:
        """Hook for journeys that keep state from events (the cart's contents, app installed).

        Raise ``ValueError`` (a pydantic ``ValidationError`` is one), ``TypeError`` or
        ``LookupError`` for data it cannot read: the event is then recorded as ignored.
        """

    @workflow.query(name="timeline")
    def timeline(self) -> list[TimelineEntry]:
        """Every step so far with its journey time, channel and outcome."""
        return list(self._timeline)

    @workflow.query(name="waiting")
    def waiting(self) -> WaitInfo:
        """What the journey waits for now and what a skip would do (``journeys skip`` says it before acting)."""
        if self._waiting is None:
            return WaitInfo()
        return WaitInfo(waiting=self._waiting, on_skip=self._on_skip, events=sorted(self._waiting_for))

    # operators' updates -----------------------------------------------------------------------

    @workflow.update(name="skip_wait")
    def skip_wait(self, action: SkipAction) -> str:
        """End the wait the journey is in now (a timer, an event, a receipt) as if it had run out.

        With ``action.as_event``, as if that event (one the wait is for) had come instead.
        """
        try:
            self._note_operator("skip_wait", action)
            waiting = self._waiting or "wait"
            if action.as_event is not None:
                self._take_event(
                    JourneyEvent(
                        type=action.as_event,
                        event_id=f"operator:{action.as_event.value}:{len(self._timeline)}",
                        received_at=workflow.now(),
                    )
                )
                effect = f"as if {action.as_event.value} came"
            else:
                self._skip = True
                effect = self._on_skip or SKIP_TIMER
            self._record(
                "operator",
                Outcome.OPERATOR,
                None,
                f"skip_wait by {action.operator}: {action.reason} ({waiting}: {effect})",
            )
            return f"skipped: {waiting}: {effect}"
        except Exception as exc:  # noqa: BLE001 - a failure of this call, never of the workflow task
            raise _update_failed("skip_wait", exc) from None

    @skip_wait.validator
    def _check_skip_wait(self, action: SkipAction) -> None:
        self._check_operable(action)
        if self._waiting is None:
            raise ApplicationError("the journey is not waiting now (it is sending); try again in a moment")
        if self._skip:
            raise ApplicationError(f"a skip of this wait ({self._waiting}) is already under way")
        as_event = getattr(action, "as_event", None)  # an older client's OperatorAction has none
        if as_event is not None and as_event not in self._waiting_for:
            waits = ", ".join(sorted(self._waiting_for)) or "no event"
            raise ApplicationError(f"{self._waiting} waits for {waits}, not {as_event.value}")

    @workflow.update(name="exit")
    def exit_journey(self, action: OperatorAction) -> str:
        """End the journey: no more sends; a send already with the provider is not recalled."""
        try:
            self._note_operator("exit", action)
            self._operator_exit = action
            self._record("operator", Outcome.OPERATOR, None, f"exit by {action.operator}: {action.reason}")
            return "exiting: no more messages will be sent"
        except Exception as exc:  # noqa: BLE001 - a failure of this call, never of the workflow task
            raise _update_failed("exit", exc) from None

    @exit_journey.validator
    def _check_exit(self, action: OperatorAction) -> None:
        self._check_operable(action)

    @workflow.update(name="resend")
    async def resend(self, action: ResendAction) -> str:
        """Send a step again (on ``action.channel`` or the channel it went out on), under a new key.

        The resend obeys consent, opt-out, quiet hours and the frequency caps (an ad resent counts
        like any ad), not the duplicate-content window (an operator chose to send it again). A
        step is resent at most ``max_resends_per_step`` times. Its key links to the first message
        in the log. Returns what happened, in one line.
        """
        try:
            return await self._resend(action)
        except ApplicationError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failure of this call, never of the workflow task
            raise _update_failed("resend", exc) from None

    async def _resend(self, action: ResendAction) -> str:
        self._note_operator("resend", action)
        template, variables, purpose, keys = self._sent_steps[action.step]
        channel = action.channel or self._sent_channel(action.step)
        number = self._resends[action.step] = self._resends.get(action.step, 0) + 1
        self._record(action.step, Outcome.OPERATOR, channel, f"resend by {action.operator}: {action.reason}")
        request = self._request(action.step, channel, template, variables, purpose, resend=number, resend_of=keys[-1])
        try:
            outcome = await self._execute_send(
                request, schedule_to_close=SEND_ROUND, summary=f"{action.step} via {channel.value} (resend)"
            )
        except ActivityError as err:
            failure = _failure_type(err)
            self._record(action.step, Outcome.FAILED, channel, f"resend: {failure}")
            return f"not sent: {failure}"
        if outcome.status is OutcomeStatus.ACCEPTED:
            if outcome.receipt is ReceiptMode.NONE:
                self._record(action.step, Outcome.DELIVERED, channel, "resend; no receipt expected")
                return f"resent on {channel.value}"
            self._record(action.step, Outcome.SENT, channel, "resend")
            self._track_receipt(self._resend_keys, outcome.idempotency_key, action.step)
            return f"resent on {channel.value}; its receipt will show in the timeline"
        self._record_not_sent(action.step, channel, outcome)
        when = f" until {outcome.not_before.astimezone(KST):%Y-%m-%d %H:%M} KST" if outcome.not_before else ""
        return f"not sent: {outcome.status.value} {outcome.reason or outcome.error_code or ''}{when}".rstrip()

    @resend.validator
    def _check_resend(self, action: ResendAction) -> None:
        self._check_operable(action)
        if action.step not in self._sent_steps:
            went = ", ".join(sorted(self._sent_steps)) or "none yet"
            raise ApplicationError(f"step {action.step!r} was never sent in this run (sent: {went})")
        limit = self._settings.max_resends_per_step
        if self._resends.get(action.step, 0) >= limit:
            raise ApplicationError(
                f"step {action.step!r} was resent {limit} times already, the most a step may be (max_resends_per_step)"
            )
        if action.channel is not None:
            declared = self.steps.get(action.step, ((), ""))[0]
            allowed = {*declared, self._sent_channel(action.step)}
            if action.channel not in allowed:
                names = ", ".join(sorted(c.value for c in allowed))
                raise ApplicationError(f"step {action.step!r} is not sent on {action.channel.value} (use {names})")

    def _check_operable(self, action: OperatorAction) -> None:
        """Reject an operator's action on a journey that has ended or is exiting, or that carries personal data.

        An Update's input stays in history once accepted: a phone number or an e-mail address
        typed into who or why is refused here (the facade and the CLI mask them before sending).
        """
        for field, value in (("operator", action.operator), ("reason", action.reason)):
            if mask(value) != value:
                raise ApplicationError(
                    f"the {field} holds a phone number or an e-mail address; leave it out (history keeps it)"
                )
        if self._ended:
            raise ApplicationError("the journey has ended")
        if self._operator_exit is not None:
            raise ApplicationError(f"the journey is exiting (by {self._operator_exit.operator})")
        if self._exit is not None:
            raise ApplicationError(f"the journey is ending ({self._exit.type.value})")

    def _note_operator(self, update: str, action: OperatorAction) -> None:
        """Log an accepted operator's action (who and what; the reason is in the timeline) before it acts."""
        workflow.logger.info("%s on %s by %s", update, self.journey, action.operator)

    def _sent_channel(self, step: str) -> Channel:
        """The channel ``step`` last went out on."""
        for entry in reversed(self._timeline):
            if entry.step == step and entry.channel is not None and entry.outcome in (Outcome.SENT, Outcome.DELIVERED):
                return entry.channel
        key = self._sent_steps[step][3][-1]
        return Channel(key.rsplit(":", 1)[-1])

    # steps -----------------------------------------------------------------------------------

    async def send_with_fallback(
        self,
        step: str,
        channels: Sequence[Channel],
        template: str,
        variables: dict[str, str],
        *,
        purpose: Purpose = Purpose.INFORMATIONAL,
        receipt_timeout: timedelta,
        on_cap: Literal["skip", "defer"] = "skip",
        defer_within: timedelta | None = None,
    ) -> StepResult:
        """Send on the first channel; on rejection, failed receipt or no receipt in time, the next.

        The contact policy rules every send (consent, quiet hours, frequency caps, journey
        priority, duplicate content). An ad over a frequency cap is ``skipped`` (reason
        ``frequency_cap``) with ``on_cap="skip"``; with ``on_cap="defer"`` the step waits until
        the window frees, unless that is more than ``defer_within`` after the step started (then
        it is skipped: a coupon for a week-old cart is no use).

        Only the first channel that delivers counts: later channels are never sent. A channel is
        left only on outcomes known not to have sent. While the store or the provider is down
        the step waits (``waiting`` in the timeline) and tries again; it ends ``expired`` past
        the journey's ``send_deadline``, and ``unknown`` when a send that may have gone out
        cannot be reconciled within ``unknown_window``: in neither case is another channel tried.

        Raises:
            JourneyExit: an exit event arrived before or during the step.
        """
        tried: list[str] = []
        started = workflow.now()
        cap = CapRule(on_cap=on_cap, defer_until=started + defer_within if defer_within is not None else None)
        if len(channels) > 1 and self._settings.fallback_mode(step) == "gateway":
            result = await self._send_by_gateway(step, channels, template, variables, purpose, tried, started, cap)
            if result is not None:
                return result
            channels = channels[1:]  # the provider did not take the chain: the journey falls back itself
        for channel in channels:
            self._raise_if_exited()
            outcome = await self._send_one(step, channel, template, variables, purpose, tried, started, cap=cap)
            if outcome is None:
                return StepResult(step=step, config_error=True)
            if outcome.status in (OutcomeStatus.UNKNOWN, OutcomeStatus.EXPIRED):
                # Unknown may have been sent and expired is no longer worth sending: either way
                # no other channel goes out for this step.
                return StepResult(step=step, ended=Outcome(outcome.status.value))
            tried.append(outcome.idempotency_key)
            if self._customer_unknown and outcome.reason != UNKNOWN_CUSTOMER:
                self._customer_unknown = False  # the profile has arrived since
                self.stage(self._stage_name)
            if outcome.status is OutcomeStatus.ACCEPTED:
                self._went_out(step, template, variables, purpose, outcome.idempotency_key)
                if outcome.receipt is ReceiptMode.NONE:
                    self._record(step, Outcome.DELIVERED, channel, "accepted; no receipt expected")
                    return StepResult(step=step, delivered=channel)
                self._record(step, Outcome.SENT, channel)
                receipt = await self._await_receipt(outcome.idempotency_key, receipt_timeout)
                if receipt is None:
                    self._closed_keys.add(outcome.idempotency_key)
                    why = "wait skipped by an operator" if self._skipped else f"none within {receipt_timeout}"
                    self._record(step, Outcome.NO_RECEIPT, channel, why)
                    continue
                if receipt.status is ReceiptStatus.DELIVERED:
                    self._record(step, Outcome.DELIVERED, channel)
                    return StepResult(step=step, delivered=channel)
                self._record(step, Outcome.FAILED, channel, receipt.error_code)
            else:
                self._record_not_sent(step, channel, outcome)
                if outcome.status is OutcomeStatus.SKIPPED and outcome.reason == UNKNOWN_CUSTOMER:
                    self._customer_unknown = True
                    self.stage(self._stage_name)
                    self._record(step, Outcome.NOT_DELIVERED, None, "the store has no profile for this customer")
                    return StepResult(step=step)
                if self._skipped_for_customer(step, outcome):
                    return StepResult(step=step)
        self._record(step, Outcome.NOT_DELIVERED, None, "no channel delivered")
        return StepResult(step=step)

    async def _send_by_gateway(
        self,
        step: str,
        channels: Sequence[Channel],
        template: str,
        variables: dict[str, str],
        purpose: Purpose,
        tried: list[str],
        started: datetime,
        cap: CapRule,
    ) -> StepResult | None:
        """One provider call carrying every channel of the step; None: it was not taken.

        Not waiting for the receipt is the point: the provider falls back by itself, and the
        receipt, whenever it comes, records the channel that delivered.
        """
        first = channels[0]
        outcome = await self._send_one(
            step, first, template, variables, purpose, tried, started, gateway=channels[1:], cap=cap
        )
        if outcome is None:
            return StepResult(step=step, config_error=True)
        if outcome.status in (OutcomeStatus.UNKNOWN, OutcomeStatus.EXPIRED):
            return StepResult(step=step, ended=Outcome(outcome.status.value))
        tried.append(outcome.idempotency_key)
        if outcome.status is OutcomeStatus.ACCEPTED:
            self._went_out(step, template, variables, purpose, outcome.idempotency_key)
            rest = ", ".join(c.value for c in channels[1:])
            self._record(step, Outcome.SENT, first, f"gateway fallback to {rest}")
            if outcome.receipt is not ReceiptMode.NONE:
                self._track_receipt(self._gateway_keys, outcome.idempotency_key, step)
            return StepResult(step=step)
        self._record_not_sent(step, first, outcome)
        if self._skipped_for_customer(step, outcome):
            return StepResult(step=step)
        return None

    def _skipped_for_customer(self, step: str, outcome: SendOutcome) -> bool:
        """Whether ``outcome`` is a skip by a rule about the customer: then the step ends here."""
        if outcome.status is not OutcomeStatus.SKIPPED or outcome.reason not in CUSTOMER_SKIPS:
            return False
        if outcome.reason == UNKNOWN_CUSTOMER:
            return False
        self._record(step, Outcome.NOT_DELIVERED, None, f"{outcome.reason} holds on every channel; none other tried")
        return True

    def _record_not_sent(self, step: str, channel: Channel, outcome: SendOutcome) -> None:
        """A send that did not go out: rejected, skipped (by policy or profile), or failed after retries."""
        if outcome.status is OutcomeStatus.REJECTED:
            self._record(step, Outcome.REJECTED, channel, outcome.error_code)
        elif outcome.status is OutcomeStatus.SKIPPED:
            self._record(step, Outcome.SKIPPED, channel, outcome.reason)
        else:  # FAILED after retries: the channel is down for now
            self._record(step, Outcome.FAILED, channel, outcome.error_code)

    async def wait_for(
        self,
        event_types: Collection[EventType],
        timeout: timedelta,
        *,
        summary: str | None = None,
        on_timeout: str | None = None,
    ) -> JourneyEvent | None:
        """The first not-yet-consumed event of ``event_types``, or ``None`` after ``timeout``.

        ``on_timeout`` says what the story does when no event comes (an operator's skip of the
        wait does the same, and ``journeys skip`` says so before acting).

        Raises:
            JourneyExit: an exit event arrived.
        """
        wanted = frozenset(event_types)

        def match() -> int | None:
            for i, event in enumerate(self._events):
                if i not in self._consumed and event.type in wanted:
                    return i
            return None

        self._waiting_for = wanted
        try:
            if not await self.wait_until(
                lambda: match() is not None,
                timeout,
                summary=summary or f"wait for {', '.join(sorted(wanted))}",
                on_timeout=on_timeout or f"the journey goes on as if no {', '.join(sorted(wanted))} came",
            ):
                return None
        finally:
            self._waiting_for = frozenset()
        index = match()
        assert index is not None
        self._consumed.add(index)
        return self._events[index]

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: timedelta, *, summary: str, on_timeout: str | None = None
    ) -> bool:
        """Wait for ``predicate`` at most ``timeout``; False on timeout (``on_timeout``: what the story does then).

        Raises:
            JourneyExit: an exit event arrived.
        """
        if timeout <= timedelta(0):
            self._raise_if_exited()
            return predicate()
        if not self._exiting() and not predicate():
            self._publish_stage()
        self._waiting, self._skip, self._skipped = summary, False, False
        self._on_skip = on_timeout or SKIP_TIMER
        try:
            await workflow.wait_condition(
                lambda: self._exiting() or self._skip or predicate(), timeout=timeout, timeout_summary=summary
            )
        except TimeoutError:
            self._raise_if_exited()
            return False
        finally:
            self._waiting = None
        self._raise_if_exited()
        if self._skip and not predicate():  # an operator's skip_wait: as if the wait had run out
            self._skip, self._skipped = False, True
            return False
        return True

    def has_event(self, event_types: Collection[EventType]) -> bool:
        """Whether an event of ``event_types`` has arrived in this run."""
        return any(e.type in event_types for e in self._events)

    async def delay(self, duration: timedelta, *, summary: str) -> None:
        """A durable timer that an exit event cuts short.

        Raises:
            JourneyExit: an exit event arrived.
        """
        await self.wait_until(lambda: False, duration, summary=summary)

    async def delay_until(self, when: datetime, *, summary: str) -> None:
        """Wait until ``when`` in journey time (no wait if it has passed)."""
        await self.delay(when - workflow.now(), summary=summary)

    async def delay_until_local_hours(self, start: time, end: time, *, summary: str) -> None:
        """Wait, if needed, until the customer's local (KST) clock is within ``[start, end)``.

        Raises:
            JourneyExit: an exit event arrived.
        """
        local = workflow.now().astimezone(KST)
        if start <= local.time() < end:
            return
        opening = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
        if opening <= local:
            opening += timedelta(days=1)
        await self.delay_until(opening, summary=summary)

    # journey bookkeeping ---------------------------------------------------------------------

    def stage(self, name: str) -> None:
        """Show the journey's stage in the UI: current details at once, ``JourneyStage`` when it lasts.

        The search attribute is written when the journey next waits for an event or a timer
        (and when it ends), not for stages it passes through in one go: each upsert is a
        history event, a billed action and a visibility write (see bench/README.md). Name a
        stage by what the journey waits for next.
        """
        self._stage_name = name
        if self._customer_unknown:  # visible until a send finds the customer
            workflow.set_current_details(f"{self.journey}: {name}; customer unknown to the store")
            self._stage = UNKNOWN_CUSTOMER
            return
        workflow.set_current_details(f"{self.journey}: {name}")
        self._stage = name

    def _publish_stage(self) -> None:
        """Write the pending stage to ``JourneyStage`` if it differs from what is there."""
        if self._stage is not None and workflow.info().typed_search_attributes.get(JOURNEY_STAGE) != self._stage:
            workflow.upsert_search_attributes([JOURNEY_STAGE.value_set(self._stage)])

    async def run_story(self, customer_id: str, settings: JourneySettings, story: object) -> JourneyResult:
        """Run a journey's story coroutine with its send settings; an exit event ends it cleanly."""
        self._customer_id = customer_id
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
        return JourneyResult(journey=self.journey, outcome=str(outcome), timeline=self._timeline)

    # internals -------------------------------------------------------------------------------

    async def _send_one(
        self,
        step: str,
        channel: Channel,
        template: str,
        variables: dict[str, str],
        purpose: Purpose,
        supersedes: list[str],
        started: datetime,
        gateway: Sequence[Channel] = (),
        cap: CapRule | None = None,
    ) -> SendOutcome | None:
        """One channel's send, waiting out deferrals and outages; None on a configuration error."""
        key = idempotency_key(workflow.info().workflow_id, step, channel, self._episode())
        pause = OUTAGE_FIRST_PAUSE
        waiting = False  # an earlier round failed: the next one settles its claim first
        while True:
            request = self._request(
                step,
                channel,
                template,
                variables,
                purpose,
                supersedes=supersedes,
                reentry_cooldown=self._reentry_cooldown,
                reconcile=waiting,
                gateway=list(gateway),
                on_cap=cap.on_cap if cap else "skip",
                defer_until=cap.defer_until if cap else None,
            )
            try:
                outcome = await self._execute_send(
                    request, schedule_to_close=self._round(started), summary=f"{step} via {channel.value}"
                )
            except ActivityError as err:
                failure = _failure_type(err)
                if failure == CONFIG_ERROR:
                    workflow.logger.error("step %s stopped by a configuration error: %s", step, err.cause)
                    self._record(step, Outcome.CONFIG_ERROR, channel, _message_of(err))
                    return None
                ended = self._outage_ended(step, channel, failure, started)
                if ended is not None:
                    return SendOutcome(status=ended, channel=channel, idempotency_key=key, reason=failure)
                self._send_queues = None  # the next round asks again: routes may have changed
                if not waiting:
                    waiting = True
                    why = "outcome unknown, reconciling" if _maybe_sent(failure) else f"{failure}, will retry"
                    self._record(step, Outcome.WAITING, channel, why)
                    workflow.set_current_details(f"{self.journey}: {step} waiting ({why})")
                # A receipt for this key settles an unknown outcome: the provider took the message.
                if await self.wait_until(lambda: key in self._receipts, pause, summary=f"{step}: {failure}, try again"):
                    return SendOutcome(
                        status=OutcomeStatus.ACCEPTED,
                        channel=channel,
                        idempotency_key=key,
                        receipt=ReceiptMode.WEBHOOK,
                        reason="settled by its receipt",
                    )
                pause = min(pause * 2, OUTAGE_MAX_PAUSE)
                continue
            if outcome.status is not OutcomeStatus.DEFERRED or outcome.not_before is None:
                return outcome
            until = outcome.not_before.astimezone(KST)
            self._record(step, Outcome.DEFERRED, channel, f"{outcome.reason} until {until:%Y-%m-%d %H:%M:%S} KST")
            await self.delay_until(outcome.not_before, summary=f"{step}: {outcome.reason}")
            self._raise_if_exited()

    def _request(
        self, step: str, channel: Channel, template: str, variables: dict[str, str], purpose: Purpose, **extra: Any
    ) -> SendRequest:
        """The send request of ``step`` on ``channel`` at this journey time (``extra``: the other fields)."""
        return SendRequest(
            workflow_id=workflow.info().workflow_id,
            journey=self.journey,
            step=step,
            customer_id=self._customer_id,
            channel=channel,
            template=template,
            purpose=purpose,
            variables=variables,
            journey_time=workflow.now(),
            episode=self._episode(),
            **extra,
        )

    async def _execute_send(self, request: SendRequest, *, schedule_to_close: timedelta, summary: str) -> SendOutcome:
        """The send activity for ``request``, on its channel's provider queue.

        Raises:
            ActivityError: the send failed after its retries (or for configuration).
        """
        outcome: SendOutcome = await workflow.execute_activity_method(
            SendActivities.send_message,
            request,
            task_queue=await self._queue_for(request.channel),
            start_to_close_timeout=self._send_timeout,
            schedule_to_close_timeout=schedule_to_close,
            retry_policy=SEND_RETRY,
            summary=summary,
        )
        return outcome

    def _track_receipt(self, tracked: dict[str, str], key: str, step: str) -> None:
        """A send nobody waits for: its receipt, whenever it comes (or came with the answer), settles ``step``."""
        tracked[key] = step
        early = self._receipts.pop(key, None)
        if early is not None:
            self.on_receipt(early)

    async def _queue_for(self, channel: Channel) -> str | None:
        """The task queue of ``channel``'s rate-limited provider (None: the journey's own queue)."""
        if self._send_queues is None:
            self._send_queues = await workflow.execute_local_activity_method(
                SendActivities.send_queues, start_to_close_timeout=ROUTE_TIMEOUT, summary="send queues"
            )
        return self._send_queues.get(channel)

    def _round(self, started: datetime) -> timedelta:
        """How long this round of attempts may last: a round never runs past the step's deadline."""
        if self._send_deadline is None:
            return SEND_ROUND
        left = started + self._send_deadline - workflow.now()
        return max(min(SEND_ROUND, left), timedelta(seconds=1))

    def _outage_ended(self, step: str, channel: Channel, failure: str, started: datetime) -> OutcomeStatus | None:
        """Whether a send that keeps failing for infrastructure reasons ends its step now, and how."""
        elapsed = workflow.now() - started
        if _maybe_sent(failure) and elapsed >= self._unknown_window:
            ended, detail = Outcome.UNKNOWN, f"may have been sent; not reconciled within {self._unknown_window}"
        elif self._send_deadline is not None and elapsed >= self._send_deadline:
            ended, detail = Outcome.EXPIRED, f"{failure} past the deadline of {self._send_deadline}"
        else:
            return None
        self._record(step, ended, channel, detail)
        workflow.set_current_details(f"{self.journey}: {step} ended {ended.value} ({detail})")
        workflow.logger.warning("step %s ended %s on %s: %s", step, ended.value, channel.value, failure)
        return OutcomeStatus(ended.value)

    async def _await_receipt(self, key: str, timeout: timedelta) -> DeliveryReceipt | None:
        summary = f"receipt for {key.rsplit(':', 2)[-2]}"
        self._waiting, self._skip, self._skipped = summary, False, False
        self._on_skip = "the step moves on to its next channel, if it has one"
        try:
            await workflow.wait_condition(
                lambda: key in self._receipts or self._exiting() or self._skip,
                timeout=timeout,
                timeout_summary=summary,
            )
        except TimeoutError:
            return None
        finally:
            self._waiting = None
        if key not in self._receipts and self._skip and not self._exiting():
            self._skip, self._skipped = False, True
            return None
        if key in self._receipts:
            return self._receipts[key]
        self._raise_if_exited()
        return None

    def _episode(self) -> str | None:
        return workflow.info().first_execution_run_id if self.reuses_workflow_id else None

    def _raise_if_exited(self) -> None:
        if self._operator_exit is not None:
            raise JourneyExit(None, f"operator {self._operator_exit.operator}")
        if self._exit is not None:
            raise JourneyExit(self._exit)

    def _exiting(self) -> bool:
        return self._exit is not None or self._operator_exit is not None

    def _went_out(self, step: str, template: str, variables: dict[str, str], purpose: Purpose, key: str) -> None:
        """Remember what ``step`` sent (for an operator's resend)."""
        keys = self._sent_steps[step][3] if step in self._sent_steps else []
        self._sent_steps[step] = (template, variables, purpose, [*keys, key])

    async def until_handlers_finished(self) -> None:
        """Wait for operators' Updates still running (a resend) before the run ends or continues as new."""
        await workflow.wait_condition(workflow.all_handlers_finished)

    def _record(self, step: str, outcome: Outcome, channel: Channel | None = None, detail: str | None = None) -> None:
        if outcome in (Outcome.EVENT, Outcome.IGNORED):
            if self._timeline_events >= MAX_TIMELINE_EVENTS:
                return  # what a journey sends is bounded by its story; what it is told, here
            self._timeline_events += 1
        now = workflow.now()
        self._timeline.append(
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


def _update_failed(update: str, exc: Exception) -> ApplicationError:
    """An error inside an Update handler as a failure of that call (never of the workflow task)."""
    return ApplicationError(f"{update} failed: {type(exc).__name__}", non_retryable=True)


def _failure_type(err: ActivityError) -> str:
    """The type of the last failure behind an activity error (``timeout`` for a timed-out attempt)."""
    cause: BaseException | None = err.cause
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type:
            return cause.type
        if isinstance(cause, ActivityTimeout) and cause.cause is None:
            return "timeout"
        cause = getattr(cause, "cause", None)  # the SDK's failures chain through .cause
    return "unknown"


def _maybe_sent(failure: str) -> bool:
    """Whether an attempt that failed so may have reached the provider (reconcile, never fall back)."""
    return failure in (OUTCOME_UNKNOWN, "timeout", "unknown")


def _message_of(err: ActivityError) -> str | None:
    cause = err.cause
    return cause.message if isinstance(cause, ApplicationError) else None
