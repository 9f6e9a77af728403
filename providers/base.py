"""The provider contract: channels, outbound messages, send results and delivery receipts.

Every channel provider (the sandbox, Solapi, NHN Cloud, SMTP, FCM ...) implements
:class:`Provider`. Nothing here imports Temporal, so providers are usable and testable alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class Channel(StrEnum):
    """A way to reach a customer."""

    ALIMTALK = "alimtalk"
    BRAND_MESSAGE = "brand_message"
    RCS = "rcs"
    SMS = "sms"  # SMS or LMS, chosen by the body's cp949 byte length
    PUSH = "push"
    WEB_PUSH = "web_push"
    IN_APP = "in_app"
    EMAIL = "email"
    WEBHOOK = "webhook"


PHONE_CHANNELS = frozenset({Channel.ALIMTALK, Channel.BRAND_MESSAGE, Channel.RCS, Channel.SMS})


class Purpose(StrEnum):
    """Why a message is sent; advertising triggers Korea's ad rules and consent checks."""

    INFORMATIONAL = "informational"
    ADVERTISING = "advertising"


class SendStatus(StrEnum):
    """What the provider said about a send."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


class ErrorClass(StrEnum):
    """What a journey does about a failed send (DESIGN §3)."""

    RETRY = "retry"  # 429/5xx/timeout before write: retry the activity
    FALLBACK = "fallback"  # channel cannot reach this person: next channel now
    RECIPIENT_DEAD = "recipient_dead"  # token unregistered, hard bounce: mark dead, next channel
    DEFER = "defer"  # quiet hours / rate window: wait durably, then send
    CONFIG = "config"  # bad key, sender or template: stop the step and alert
    REQUEST = "request"  # invalid number or body: next channel if any
    UNKNOWN = "unknown"  # outcome unknown: reconcile by idempotency key before any resend


class ReceiptMode(StrEnum):
    """How the final delivery outcome of an accepted message becomes known."""

    WEBHOOK = "webhook"
    POLL = "poll"
    NONE = "none"


class ReceiptStatus(StrEnum):
    """Final delivery outcome reported by a provider."""

    DELIVERED = "delivered"
    FAILED = "failed"


class SmsKind(StrEnum):
    """Korean carrier message type, chosen by cp949 byte length."""

    SMS = "SMS"
    LMS = "LMS"


class OutboundMessage(BaseModel):
    """One rendered message for one provider call."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    channel: Channel
    purpose: Purpose = Purpose.INFORMATIONAL
    to: str = Field(min_length=1, description="phone, email, push token or URL")
    body: str
    subject: str | None = None
    template_code: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    sender: str | None = None
    sms_kind: SmsKind | None = None
    idempotency_key: str = Field(min_length=1)
    workflow_id: str | None = None
    step: str | None = None


class SendResult(BaseModel):
    """A provider's answer to one send."""

    model_config = ConfigDict(extra="ignore")

    status: SendStatus
    provider_message_id: str | None = None
    error_class: ErrorClass | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after: timedelta | None = None
    receipt: ReceiptMode = ReceiptMode.NONE


class DeliveryReceipt(BaseModel):
    """A provider's report of the final outcome of an accepted message."""

    model_config = ConfigDict(extra="ignore")

    provider: str
    provider_message_id: str | None = None
    idempotency_key: str | None = None
    status: ReceiptStatus
    error_class: ErrorClass | None = None
    error_code: str | None = None
    occurred_at: datetime | None = None
    workflow_id: str | None = None
    step: str | None = None
    channel: Channel | None = None


@runtime_checkable
class Provider(Protocol):
    """A channel provider. ``send`` answers with a result; it raises only on programming errors."""

    name: str

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Send one message; the idempotency key makes a repeat call harmless."""
        ...

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> list[DeliveryReceipt]:
        """Verify an inbound receipt webhook and parse it; raise ``SignatureError`` if forged."""
        ...

    async def lookup(self, idempotency_key: str) -> SendResult | None:
        """Find an earlier send by idempotency key (for UNKNOWN outcomes); None if never seen."""
        ...


def json_headers(extra: dict[str, Any] | None = None) -> dict[str, str]:
    """Headers for a JSON API call."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    headers.update({k: str(v) for k, v in (extra or {}).items()})
    return headers
