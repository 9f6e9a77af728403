"""What crosses the boundary between journeys (workflows) and their activities: pure types, no I/O.

Workflows import this module plainly, inside the workflow sandbox: it imports pydantic and the
provider contract's types (:mod:`durable_journeys.providers.base`) only, and holds no state.
Everything here is part of a running journey's history (inputs and results of activities), so
a change must keep old payloads readable (new fields get defaults; ``extra="ignore"``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from durable_journeys.providers.base import (
    EDGE,
    OPAQUE_ID_PATTERN,
    Channel,
    DeliveryReceipt,
    ErrorClass,
    OpaqueId,
    PlainText,
    Purpose,
    ReceiptMode,
    ReceiptStatus,
    bounded_json,
)

__all__ = [
    "CHANNEL_SKIPS",
    "CONFIG_ERROR",
    "ASSIGN_VARIANT",
    "CONSENT_CLOCKS",
    "RECORD_CONSENT_NOTICE",
    "SEND_MESSAGE",
    "SEND_QUEUES",
    "CUSTOMER_SKIPS",
    "EDGE",
    "KST",
    "OUTCOME_UNKNOWN",
    "PROVIDER_UNAVAILABLE",
    "STORE_UNAVAILABLE",
    "UNKNOWN_CUSTOMER",
    "WRONG_QUEUE",
    "Channel",
    "ConsentClock",
    "ConsentClocksRequest",
    "ConsentNotice",
    "DeliveryReceipt",
    "ErrorClass",
    "OpaqueId",
    "OutcomeStatus",
    "PlainText",
    "Purpose",
    "ReceiptMode",
    "ReceiptStatus",
    "SendOutcome",
    "SendRequest",
    "SplitAnswer",
    "SplitRequest",
    "Variant",
    "bounded_json",
    "idempotency_key",
]

KST = timezone(timedelta(hours=9), "KST")

# The activities' names: journeys schedule them by name, with the result types below, so that
# no activity module (the store, the providers' clients) is imported inside the workflow sandbox.
SEND_MESSAGE = "send_message"  # SendRequest -> SendOutcome
SEND_QUEUES = "send_queues"  # local: () -> dict[Channel, str], the task queue of each rate-limited channel
CONSENT_CLOCKS = "consent_clocks"  # ConsentClocksRequest -> list[ConsentClock]
RECORD_CONSENT_NOTICE = "record_consent_notice"  # ConsentNotice -> None
ASSIGN_VARIANT = "assign_variant"  # SplitRequest -> SplitAnswer

# Why a send is skipped, split by what the rule is about (README "Contact policy": the table).
# A rule about the customer holds on every channel: the step ends with it. A rule about one
# channel (its address, its consent, its own cap) lets the step try its next channel.
CUSTOMER_SKIPS = frozenset(
    {
        "unknown_customer",  # the store has no profile
        "unsubscribed",  # no ads at all
        "reentry_cooldown",  # another run of this journey messaged the customer lately
        "frequency_cap",  # the customer's ads across channels and journeys
        "priority_grace",  # a higher-priority journey's ad may take the window's last slot
        "duplicate_content",  # the same content reached the customer lately, on any channel
        "holdout",  # the customer is in the global holdout: no ads from any journey
    }
)
CHANNEL_SKIPS = frozenset(
    {
        "no_address",  # no phone, e-mail, token or subscription for this channel
        "address_dead",  # the address bounced or was unregistered
        "no_marketing_consent",  # no ad consent for this channel
        "marketing_consent_expired",  # this channel's consent is older than two years
        "channel_frequency_cap",  # this channel's own cap
    }
)


# The activity's error types (ApplicationError.type) a journey branches on.
CONFIG_ERROR = "ConfigError"
PROVIDER_UNAVAILABLE = "ProviderUnavailable"
OUTCOME_UNKNOWN = "SendOutcomeUnknown"
# A send scheduled on the journey's own queue for a channel whose provider is rate-limited on a
# queue of its own; the failure's details carry the routes (channel -> task queue). Not retried.
WRONG_QUEUE = "WrongSendQueue"
# SendOutcome.reason when the store has no profile for the customer: no channel can reach them.
UNKNOWN_CUSTOMER = "unknown_customer"
STORE_UNAVAILABLE = "StoreUnavailable"


def idempotency_key(workflow_id: str, step: str, channel: Channel, episode: str | None = None, resend: int = 0) -> str:
    """``{workflow_id}:{step}:{channel}``: one message per journey step and channel, ever.

    A journey whose workflow id is reused by later runs (the cart) passes its run chain's
    ``episode`` (first run id), making the key ``{workflow_id}@{episode}:{step}:{channel}``.
    An operator's ``resend`` number ``n`` makes it ``{workflow_id}:{step}~resend{n}:{channel}``.
    """
    scope = f"{workflow_id}@{episode}" if episode else workflow_id
    part = f"{step}~resend{resend}" if resend else step
    return f"{scope}:{part}:{channel.value}"


class SendRequest(BaseModel):
    """What a journey asks to send. Holds no contact details: the activity loads them."""

    model_config = ConfigDict(extra="ignore")

    workflow_id: str
    journey: str
    step: str
    customer_id: str
    channel: Channel
    template: str
    purpose: Purpose = Purpose.INFORMATIONAL
    variables: dict[str, str] = Field(default_factory=dict)
    journey_time: datetime = Field(description="workflow.now() at the send: policy runs on journey time")
    supersedes: list[str] = Field(default_factory=list, description="keys of earlier channels of this step (fallback)")
    episode: str | None = Field(default=None, description="run chain id, for journeys with reused ids")
    reentry_cooldown: timedelta | None = Field(
        default=None, description="skip if another run of this workflow id sent within this long"
    )
    reconcile: bool = Field(default=False, description="an earlier request for this key may have sent: settle it first")
    gateway: list[Channel] = Field(
        default_factory=list,
        description="gateway fallback: channels the provider itself tries, in order, if this one fails",
    )
    on_cap: Literal["skip", "defer"] = Field(
        default="skip", description="an ad over a frequency cap: skipped, or deferred until the window frees"
    )
    defer_until: datetime | None = Field(
        default=None, description="journey time after which a deferred ad is skipped instead (None: no limit)"
    )
    resend: int = Field(default=0, ge=0, le=1000, description="an operator's resend: its number for this step")
    resend_of: str | None = Field(default=None, max_length=300, description="the key of the message resent")
    await_receipt: bool = Field(
        default=True,
        description="the journey waits for the receipt by signal; False: the webhook app only logs it",
    )
    receipt_in_answer: bool = Field(
        default=False,
        description="engine 3: a receipt that comes within the worker's receipt grace is in the answer, unsignalled",
    )
    experiment: str | None = Field(default=None, max_length=64, description="the journey's experiment (its last split)")
    variant: str | None = Field(default=None, max_length=64, description="the customer's variant in it")

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.workflow_id, self.step, self.channel, self.episode, self.resend)


class OutcomeStatus(StrEnum):
    """What became of a send request."""

    ACCEPTED = "accepted"  # the provider took it; a receipt may follow
    REJECTED = "rejected"  # the provider refused it (see error_class)
    SKIPPED = "skipped"  # the policy or the profile ruled it out (see reason)
    DEFERRED = "deferred"  # not now: send again at not_before
    # Set by the journey, never by the activity:
    UNKNOWN = "unknown"  # may have been sent, and reconciling did not tell within its window
    EXPIRED = "expired"  # infrastructure kept it from going out before the step's deadline


class SendOutcome(BaseModel):
    """The activity's answer."""

    model_config = ConfigDict(extra="ignore")

    status: OutcomeStatus
    channel: Channel
    idempotency_key: str
    provider: str | None = None
    provider_message_id: str | None = None
    receipt: ReceiptMode = ReceiptMode.NONE
    error_class: ErrorClass | None = None
    error_code: str | None = None
    reason: str | None = None
    not_before: datetime | None = None
    replayed: bool = Field(default=False, description="answered from the message log, not sent")
    delivery: DeliveryReceipt | None = Field(
        default=None, description="the receipt, when it came within the worker's receipt grace (receipt_in_answer)"
    )


class ConsentClocksRequest(BaseModel):
    """Which of a customer's ad consents are in force at ``at`` (journey time), given they last ``valid_for``."""

    customer_id: str
    at: datetime
    valid_for: timedelta


class ConsentClock(BaseModel):
    """One ad consent in force: when it was given, and since when its two years run (the last notice)."""

    channel: Channel
    given_at: datetime
    since: datetime


class ConsentNotice(BaseModel):
    """A consent notice that reached the customer."""

    customer_id: str
    channel: Channel
    at: datetime


# An experiment's or a variant's name: the rule of an opaque id (1-64 letters, digits and _.-).
Name64 = Annotated[str, Field(pattern=OPAQUE_ID_PATTERN)]


class Variant(BaseModel):
    """One arm of an experiment and its weight (a share of the sum of the weights)."""

    model_config = ConfigDict(extra="forbid")

    name: Name64
    weight: int = Field(default=1, ge=0, le=10_000)


class SplitRequest(BaseModel):
    """Which variant of ``experiment`` the journey's customer takes (the split step)."""

    model_config = ConfigDict(extra="ignore")

    experiment: Name64
    variants: list[Variant] = Field(min_length=1, max_length=20)
    customer_id: str
    journey: str
    workflow_id: str
    journey_time: datetime

    @model_validator(mode="after")
    def _distinct(self) -> SplitRequest:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variants: each name once")
        return self


class SplitAnswer(BaseModel):
    """The customer's variant, and how it was chosen.

    ``assigned`` now, ``kept`` from before, ``forced`` (the kit), or uncounted in its arms: by
    the experiment's live setting, ``winner`` or ``stopped``, or ``holdout`` (the customer is in
    the global holdout and takes the first variant).
    """

    variant: str
    how: str
