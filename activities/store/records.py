"""What the store returns and takes: message, receipt, inbox and report records; contact limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from durable_journeys.providers import Channel, DeliveryReceipt, ReceiptStatus


class MessageStatus(StrEnum):
    """Where a logged message stands."""

    SENDING = "sending"  # claimed; the provider call may or may not have happened
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # the provider call's outcome is unknown: reconcile before resending


class EventAdmission(StrEnum):
    """Whether the facade may signal an event to a journey (``Store.admit_event``)."""

    ADMITTED = "admitted"  # new, and under the journey's limit for its type: counted
    SEEN = "seen"  # its event id was signalled to this journey before
    LIMITED = "limited"  # the journey took as many events of this type as it can use


class MessageRecord(BaseModel):
    """One row of the message log."""

    model_config = ConfigDict(from_attributes=True)

    idempotency_key: str
    workflow_id: str
    step: str
    channel: str
    customer_id: str
    provider: str
    purpose: str
    template: str
    status: MessageStatus
    attempts: int
    provider_message_id: str | None = None
    receipt_mode: str | None = None
    error_class: str | None = None
    error_code: str | None = None
    superseded: bool = False
    receipt_status: str | None = None
    receipt_error_code: str | None = None
    receipt_at: datetime | None = None
    receipt_late: bool = False
    journey_time: datetime | None = None
    episode: str | None = None
    final_channel: str | None = None
    receipt_channel: str | None = None
    journey: str | None = None
    resend_of: str | None = None
    # True: the journey learns the receipt (signalled, or in the send's answer, see take_receipt);
    # False: the log holds it (a gateway chain's, or a send held for its receipt, not yet handed off).
    receipt_awaited: bool = True
    experiment: str | None = None
    variant: str | None = None
    message_type: str | None = None
    created_at: datetime

    def as_receipt(self) -> DeliveryReceipt | None:
        """The receipt as the journey is told it: what the log holds (the first receipt won), or None."""
        if self.receipt_status is None:
            return None
        # A gateway chain: the channel that settled it; otherwise the one we sent on.
        channel = (self.receipt_channel or self.channel) if self.final_channel else self.channel
        return DeliveryReceipt(
            provider=self.provider,
            provider_message_id=self.provider_message_id,
            idempotency_key=self.idempotency_key,
            status=ReceiptStatus(self.receipt_status),
            error_code=self.receipt_error_code,
            occurred_at=self.receipt_at,
            workflow_id=self.workflow_id,
            step=self.step,
            channel=Channel(channel),
        )

    @field_validator("receipt_at", "journey_time", "created_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Times are aware on every database (SQLite returns naive UTC)."""
        return None if value is None else _aware(value)


class Cap(BaseModel):
    """At most ``limit`` advertising steps per customer in a rolling ``window`` (on ``channel``, or overall)."""

    model_config = ConfigDict(frozen=True)

    limit: int
    window: timedelta
    channel: str | None = None


class ContactLimits(BaseModel):
    """What a new claim must respect, checked in the same transaction as the claim.

    Counted are the customer's messages of *other* steps that went out or may have (not
    rejected, no failed receipt), by journey time. A step counts once however many of its
    channels were tried.
    """

    advertising: bool
    caps: list[Cap] = Field(default_factory=list)
    content_key: str | None = None
    duplicate_window: timedelta | None = None
    priority_grace: timedelta | None = Field(
        default=None,
        description="set for a journey below the top priority: before its ad takes the last slot of a "
        "window it waits this long, so a higher-priority ad that comes meanwhile takes the slot",
    )


class ContactRefused(Exception):  # noqa: N818 - a refusal, not a failure
    """A new claim the contact policy refused; nothing was inserted.

    ``reason`` is ``duplicate_content``, ``frequency_cap`` (the customer's cap over every channel),
    ``channel_frequency_cap`` (only this channel's) or ``priority_grace``; ``not_before``
    is when the same claim could pass (caps and holds).
    """

    def __init__(self, reason: str, not_before: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.not_before = not_before


class InboxMessage(BaseModel):
    """One message of a customer's in-app inbox."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    title: str | None = None
    body: str
    created_at: datetime
    read_at: datetime | None = None


def _stored_time(value: datetime) -> datetime:
    """A stored time as an aware datetime (SQLite returns naive UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_aware = _stored_time
StoredTime = Annotated[datetime, AfterValidator(_stored_time)]


class SkipRecord(BaseModel):
    """A send the policy or the profile ruled out (skipped) or put off (deferred): its latest such outcome."""

    model_config = ConfigDict(from_attributes=True)

    idempotency_key: str
    workflow_id: str
    journey: str
    step: str
    channel: str
    customer_id: str
    status: str
    reason: str
    journey_time: StoredTime


class Engagement(BaseModel):
    """A customer opened or clicked a message."""

    model_config = ConfigDict(from_attributes=True)

    customer_id: str
    kind: str
    step: str | None = None
    channel: str | None = None
    at: StoredTime


class PaidOrder(BaseModel):
    """An order, as the report attributes it."""

    model_config = ConfigDict(from_attributes=True)

    order_id: str
    customer_id: str
    paid_at: StoredTime
    amount: int = 0


class Assignment(BaseModel):
    """A customer's variant in an experiment (the first assignment holds)."""

    model_config = ConfigDict(from_attributes=True)

    experiment: str
    customer_id: str
    variant: str
    how: str  # assigned (by the split) | forced (the testing kit or an operator)
    journey: str
    workflow_id: str
    assigned_at: StoredTime


class ExperimentSetting(BaseModel):
    """An operator's live setting of an experiment (see ``Store.set_experiment``)."""

    model_config = ConfigDict(from_attributes=True)

    experiment: str
    state: str  # running | stopped | winner
    weights: dict[str, int] | None = None
    winner: str | None = None
    changed_by: str
    reason: str
    changed_at: StoredTime


class ReceiptRecord(BaseModel):
    """What recording a receipt found."""

    message: MessageRecord
    duplicate: bool
    late: bool
    interim: bool = False  # a gateway chain's earlier channel failed: the provider tries the next
