"""What HTTP providers share: which transport errors mean "not sent", and the usual results."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import httpx

from durable_journeys.providers.base import DeliveryReceipt, ErrorClass, InvalidReceipt, SendResult, SendStatus
from durable_journeys.providers.errors import WebhookError

# Raised before a byte of the request was written: the provider cannot have taken the message.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def retry_after(headers: Mapping[str, str]) -> timedelta | None:
    """A ``Retry-After`` header in seconds (an HTTP date is ignored: backoff applies then)."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "").strip()
    return timedelta(seconds=int(value)) if value.isdigit() else None


def rejected(cls: ErrorClass, code: str, message: str | None = None, *, after: timedelta | None = None) -> SendResult:
    """The provider did not take the message; ``cls`` says what the journey does about it."""
    return SendResult(
        status=SendStatus.REJECTED, error_class=cls, error_code=code, error_message=message, retry_after=after
    )


def unknown(code: str) -> SendResult:
    """The message may have been taken: only a lookup by key can tell."""
    return SendResult(status=SendStatus.UNKNOWN, error_class=ErrorClass.UNKNOWN, error_code=code)


class NoReceipts:
    """For providers that post no delivery receipts and cannot be asked what they took."""

    name: str

    async def lookup(self, idempotency_key: str) -> SendResult | None:
        """Never seen: a resend carries the same key (Message-ID, webhook-id) for the receiver to drop."""
        return None

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> list[DeliveryReceipt | InvalidReceipt]:
        """There is no receipt webhook.

        Raises:
            WebhookError: always.
        """
        raise WebhookError(f"{self.name} has no receipt webhook")
