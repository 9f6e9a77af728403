"""The provider contract: channels, outbound messages, send results and delivery receipts.

Every channel provider (the sandbox, Solapi, NHN Cloud, SMTP, FCM ...) implements
:class:`Provider`. Nothing here imports Temporal, so providers are usable and testable alone.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Protocol, runtime_checkable

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from durable_journeys.providers.channels import PHONE_CHANNELS as PHONE_CHANNELS
from durable_journeys.providers.channels import Channel as Channel

# Bounds on free-form JSON that reaches workflow history or the database.
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 8


# Pass as ``model_validate(..., context=EDGE)`` where input enters the system (the facade, the HTTP
# apps, a provider's webhook). The checks below that depend on it are enforced there only: a
# model read back from workflow history or the database must still load what older code
# accepted, or a deploy would fail running journeys on replay.
EDGE: dict[str, bool] = {"edge": True}


def at_edge(info: ValidationInfo) -> bool:
    """Whether this validation is of new input (``context=EDGE``), not of stored data."""
    return bool(info.context and info.context.get("edge"))


def _printable(value: str, info: ValidationInfo) -> str:
    """Refuse control characters (NUL, newlines, escapes) and lone surrogates in new input.

    A NUL cannot be stored by PostgreSQL, a lone surrogate cannot be encoded at all, and a newline
    in a name forges log lines and message layouts: each failed sends for an hour once.
    """
    if at_edge(info):
        for ch in value:
            if unicodedata.category(ch) in ("Cc", "Cs"):
                raise ValueError("must not contain control characters")
    return value


PlainText = Annotated[str, AfterValidator(_printable)]

OPAQUE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
OpaqueId = Annotated[str, Field(pattern=OPAQUE_ID_PATTERN, description="an opaque id (customer, order): no PII")]
"""The one id type of the project: ids appear in workflow ids and search attributes, so they are
opaque (letters, digits, ``_.-``, at most 64), never a phone number or an e-mail address."""
"""A string without control characters (checked on new input, see ``EDGE``); give it a
``Field(max_length=...)`` where it is used."""


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply ``value`` nests (stops counting past ``limit``, so hostile input costs little)."""
    depth, level = 0, [value]
    while level and depth <= limit:
        depth += 1
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item if isinstance(item, list) else ())
        ]
    return depth


def bounded_json(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    """Check that new free-form input (``EDGE``) is small and shallow enough to carry in history.

    Raises:
        ValueError: deeper than ``MAX_JSON_DEPTH`` or larger than ``MAX_JSON_BYTES`` as JSON.
    """
    if not at_edge(info):
        return value
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        size = len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError) as exc:
        raise ValueError("is not plain JSON") from exc
    if size > MAX_JSON_BYTES:
        raise ValueError(f"is larger than {MAX_JSON_BYTES} bytes")
    return value


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
    """What a journey does about a failed send (docs/architecture.md §3)."""

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


class FallbackMessage(BaseModel):
    """A message the provider itself sends when the one before it fails (gateway fallback)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    channel: Channel
    body: str
    subject: str | None = None
    template_code: str | None = None
    sms_kind: SmsKind | None = None
    image_keys: list[str] = Field(default_factory=list)


class OutboundMessage(BaseModel):
    """One rendered message for one provider call."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    channel: Channel
    purpose: Purpose = Purpose.INFORMATIONAL
    to: str = Field(min_length=1, description="phone, email, push token or URL")
    body: str
    subject: str | None = None
    html: str | None = Field(default=None, description="e-mail: the HTML body rendered from the template")
    template_code: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    sender: str | None = None
    sms_kind: SmsKind | None = None
    image_keys: list[str] = Field(default_factory=list, description="provider file keys of images (MMS)")
    fallback: list[FallbackMessage] = Field(
        default_factory=list,
        description="gateway fallback: messages the provider tries in order, to the same address, if this one fails",
    )
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

    # Bounded to the message log's columns: a longer field from a provider is refused, item by item.
    provider: str = Field(max_length=64)
    provider_message_id: PlainText | None = Field(default=None, max_length=200)
    idempotency_key: PlainText | None = Field(default=None, max_length=300)
    status: ReceiptStatus
    error_class: ErrorClass | None = None
    error_code: PlainText | None = Field(default=None, max_length=100)
    occurred_at: datetime | None = None
    workflow_id: str | None = Field(default=None, max_length=200)
    step: str | None = Field(default=None, max_length=100)
    channel: Channel | None = None


class InvalidReceipt(BaseModel):
    """One item of a verified receipt batch that could not be read; the batch's other items still count."""

    index: int
    error: str = Field(max_length=200)


@runtime_checkable
class Provider(Protocol):
    """A channel provider. ``send`` answers with a result; it raises only on programming errors."""

    name: str

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Send one message; the idempotency key makes a repeat call harmless."""
        ...

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> list[DeliveryReceipt | InvalidReceipt]:
        """Verify an inbound receipt webhook and parse it item by item.

        Raise ``SignatureError`` if forged and ``WebhookError`` if the batch itself is unreadable;
        an unreadable item becomes an :class:`InvalidReceipt` so the good ones are still recorded.
        """
        ...

    async def lookup(self, idempotency_key: str) -> SendResult | None:
        """Find an earlier send by idempotency key (for UNKNOWN outcomes); None if never seen."""
        ...


@runtime_checkable
class GatewayFallbackProvider(Protocol):
    """A provider that falls back itself: one call carries a message and the ones to try if it fails.

    Its delivery receipt names the channel that delivered (or the last one that failed).
    """

    gateway_channels: frozenset[Channel]  # channels a gateway chain may hold (one address for all)


@runtime_checkable
class AcknowledgingProvider(Protocol):
    """A provider whose webhook expects a particular answer within a deadline (Bizgo: ``{"msgKey"}`` in 5 s).

    The webhook app records the receipts, answers with :meth:`acknowledge` once they are in the
    log (or once ``ack_within`` has passed, signalling the journeys after the answer), and
    answers 503 when the receipts could not be recorded, so the provider posts them again.
    """

    ack_within: float  # seconds

    def acknowledge(self, receipts: list[DeliveryReceipt | InvalidReceipt]) -> dict[str, Any] | None:
        """The body to answer a verified webhook with (None: the app's usual answer)."""
        ...


@runtime_checkable
class ReplayableSignatureProvider(Protocol):
    """A provider whose webhook signature does not cover the body (Bizgo signs only the timestamp).

    A captured signature would carry any body within the tolerance window, so the webhook app
    remembers each signature with the body it first came with (in the store, for every process):
    the same body again is a retry, another body is refused.
    """

    replay_window: float  # seconds a signature stays valid

    def signature_id(self, headers: dict[str, str]) -> str | None:
        """What identifies one signed request (timestamp and signature); None: not signed."""
        ...


@runtime_checkable
class ConfirmingProvider(Protocol):
    """A provider that can confirm a webhook's report with an authenticated inquiry (Bizgo's).

    A webhook-reported failure makes the journey send on another channel: before that, the
    report is checked against the provider's own record of the message.
    """

    async def confirm_receipt(self, receipt: DeliveryReceipt) -> DeliveryReceipt | None:
        """The receipt as the provider's inquiry tells it (None: the provider knows no such outcome).

        Raises:
            ProviderUnavailable: the inquiry could not be made now.
        """
        ...


def json_headers(extra: dict[str, Any] | None = None) -> dict[str, str]:
    """Headers for a JSON API call."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    headers.update({k: str(v) for k, v in (extra or {}).items()})
    return headers
