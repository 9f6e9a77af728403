"""A channel the shop delivers itself: each message POSTed to its endpoint, signed per Standard Webhooks.

Signed with the ``standardwebhooks`` package: headers ``webhook-id`` (the same for every attempt
of one message, so the receiver drops repeats), ``webhook-timestamp`` and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of id.timestamp.body>``), the secret as ``whsec_<base64>``. The
receiver verifies with the same package (``Webhook(secret).verify(body, headers)``) or any
Standard Webhooks library. The body is ``{"type": "journey.message", "timestamp", "data"}``.

Nothing here knows Temporal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from durable_journeys.providers.base import (
    ErrorClass,
    OutboundMessage,
    ReceiptMode,
    SendResult,
    SendStatus,
)
from durable_journeys.providers.common import NOT_SENT_ERRORS, NoReceipts, rejected, retry_after, unknown
from durable_journeys.providers.errors import ConfigError

EVENT_TYPE = "journey.message"
# Standard Webhooks: a secret of 24 to 64 random bytes (base64 after ``whsec_``).
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64


def webhook_id(idempotency_key: str) -> str:
    """The ``webhook-id`` of a message: stable across attempts, opaque."""
    return "msg_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


class SignedWebhookProvider(NoReceipts):
    """POSTs each message to one endpoint of the shop, signed per Standard Webhooks.

    Args:
        client: the HTTP client (its timeout applies).
        url: the shop's endpoint (https).
        secret: ``whsec_<base64>`` shared with the receiver.
        name: the provider name in routes and the message log.

    Raises:
        ConfigError: the URL is not https, or the secret is not ``whsec_`` and base64 of 24 to 64 bytes.
    """

    def __init__(self, client: httpx.AsyncClient, *, url: str, secret: str, name: str = "webhook") -> None:
        self.name = name
        self._client = client
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
            # Messages carry contact details and content: never in clear text, never to a user@ URL.
            raise ConfigError("JOURNEYS_WEBHOOK_CHANNEL_URL must be an https URL of the shop's endpoint")
        self._url = url
        text = secret.strip()
        try:
            if not text.startswith("whsec_"):
                raise ValueError("no whsec_ prefix")
            key = base64.b64decode(text.removeprefix("whsec_"), validate=True)
        except (ValueError, binascii.Error):
            raise ConfigError("JOURNEYS_WEBHOOK_CHANNEL_SECRET must be whsec_ followed by base64") from None
        if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES or len(set(key)) < MIN_SECRET_BYTES // 3:
            raise ConfigError(
                f"JOURNEYS_WEBHOOK_CHANNEL_SECRET must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes "
                '(whsec_ and their base64): e.g. `python -c "import base64, os; '
                "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\"`"
            )
        self._signer = Webhook(key)

    def request(self, msg: OutboundMessage, now: datetime | None = None) -> tuple[bytes, dict[str, str]]:
        """The signed body and headers for ``msg``."""
        sent_at = now or datetime.now(UTC)
        body = json.dumps(
            {
                "type": EVENT_TYPE,
                "timestamp": sent_at.isoformat(),
                "data": {
                    "channel": msg.channel.value,
                    "purpose": msg.purpose.value,
                    "to": msg.to,
                    "subject": msg.subject,
                    "body": msg.body,
                    "reference": msg.idempotency_key,
                    "workflow_id": msg.workflow_id,
                    "step": msg.step,
                },
            },
            ensure_ascii=False,
        )
        msg_id = webhook_id(msg.idempotency_key)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self._signer.sign(msg_id, sent_at, body),
        }
        return body.encode(), headers

    async def send(self, msg: OutboundMessage) -> SendResult:
        """POST one message; a 2xx answer means the shop took it."""
        body, headers = self.request(msg)
        try:
            resp = await self._client.post(self._url, content=body, headers=headers)
        except NOT_SENT_ERRORS as exc:
            return rejected(ErrorClass.RETRY, type(exc).__name__)
        except httpx.TransportError as exc:  # may have been written: the receiver drops a repeat by id
            return unknown(type(exc).__name__)
        status = resp.status_code
        if 200 <= status < 300:
            return SendResult(
                status=SendStatus.ACCEPTED, provider_message_id=headers["webhook-id"], receipt=ReceiptMode.NONE
            )
        code = f"HTTP_{status}"
        if status in (429, 503):
            return rejected(ErrorClass.RETRY, code, after=retry_after(resp.headers))
        if status >= 500:
            return unknown(code)
        if status in (401, 403, 404):
            return rejected(ErrorClass.CONFIG, code)  # our URL or secret is wrong
        if status == 410:
            return rejected(ErrorClass.RECIPIENT_DEAD, code)  # the shop no longer delivers to this address
        return rejected(ErrorClass.REQUEST, code)
