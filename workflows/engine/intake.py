"""Signals and queries: business events and delivery receipts taken in (never failing a workflow task), the timeline."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RawValue

from durable_journeys.activities.contracts import (
    DeliveryReceipt,
    ReceiptStatus,
)
from durable_journeys.workflows.engine.core import MAX_RECEIPTS, JourneyCore
from durable_journeys.workflows.models import (
    JourneyEvent,
    JourneyState,
    Outcome,
    TimelineEntry,
    WaitInfo,
)


def event_signal(event: JourneyEvent) -> str:
    """The name a business event is signalled under: its type (``order.shipped``), readable in the UI."""
    return event.type.value


def receipt_signal(receipt: DeliveryReceipt) -> str:
    """The name a delivery receipt is signalled under, readable in the UI: ``receipt alimtalk delivered``."""
    return f"receipt {receipt.channel!s} {receipt.status!s}"[:100]


class JourneyIntake(JourneyCore):
    """Events and receipts in (under readable signal names); the timeline and the current wait out."""

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
        if event.event_id and event.event_id in self.state.event_ids:
            return
        limit = self.event_limit(event.type)
        taken = self.state.event_counts.get(event.type, 0)
        if limit is not None and taken >= limit:
            if taken == limit:  # recorded once: the timeline stays bounded too
                self._record(event.type.value, Outcome.IGNORED, None, f"more than {limit} events of this type")
                self.state.event_counts[event.type] = taken + 1
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
            self.state.event_ids[event.event_id] = None
        self.state.event_counts[event.type] = taken + 1
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
        return list(self.state.timeline)

    @workflow.query(name="state")
    def current_state(self) -> JourneyState:
        """The run's state: stage, timeline, events seen, steps sent and resent (what continue-as-new carries)."""
        return self.state

    @workflow.query(name="waiting")
    def waiting(self) -> WaitInfo:
        """What the journey waits for now and what a skip would do (``journeys skip`` says it before acting)."""
        if self._waiting is None:
            return WaitInfo()
        return WaitInfo(waiting=self._waiting, on_skip=self._on_skip, events=sorted(self._waiting_for))
