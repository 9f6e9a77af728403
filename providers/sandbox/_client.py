"""The client side of the sandbox provider: what the send activity calls."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from durable_journeys.providers.base import (
    EDGE,
    PHONE_CHANNELS,
    Channel,
    DeliveryReceipt,
    ErrorClass,
    InvalidReceipt,
    OutboundMessage,
    ReceiptMode,
    ReceiptStatus,
    SendResult,
    SendStatus,
    json_headers,
)
from durable_journeys.providers.common import NOT_SENT_ERRORS, retry_after
from durable_journeys.providers.errors import ProviderUnavailable, WebhookError
from durable_journeys.providers.signing import verify

# Provider error codes -> what the journey does (docs/architecture.md §3).
ERROR_CLASSES: dict[str, ErrorClass] = {
    "NOT_KAKAO_USER": ErrorClass.FALLBACK,
    "BLOCKED": ErrorClass.FALLBACK,
    "KAKAO_DELIVERY_FAILED": ErrorClass.FALLBACK,
    "INVALID_NUMBER": ErrorClass.REQUEST,
    "BAD_REQUEST": ErrorClass.REQUEST,
    "UNREGISTERED": ErrorClass.RECIPIENT_DEAD,
    "HARD_BOUNCE": ErrorClass.RECIPIENT_DEAD,
    "UNAUTHORIZED": ErrorClass.CONFIG,
    "TEMPLATE_NOT_FOUND": ErrorClass.CONFIG,
}


class _ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message_id: str = Field(max_length=200)
    reference: str | None = Field(default=None, max_length=300)
    channel: Channel | None = None
    status: ReceiptStatus
    error_code: str | None = Field(default=None, max_length=100)
    occurred_at: datetime | None = None
    custom_fields: dict[str, str] = Field(default_factory=dict, max_length=10)


MAX_BATCH = 1000  # receipts in one webhook post


class SandboxProvider:
    """Sends through the sandbox service's API.

    Args:
        client: an ``httpx.AsyncClient`` whose ``base_url`` is the sandbox (an ASGI transport
            in tests, a real connection elsewhere).
        api_key: the sandbox API key.
        webhook_secret: the secret receipts are signed with.
        name: the provider name used in webhook paths and the message log.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_key: str,
        webhook_secret: str,
        name: str = "sandbox",
    ) -> None:
        self.name = name
        self.gateway_channels = PHONE_CHANNELS  # it falls back itself between phone channels
        self._client = client
        self._api_key = api_key
        self._secret = webhook_secret

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Send one message; the idempotency key travels as a header and as the reference."""
        payload: dict[str, Any] = {
            "channel": msg.channel.value,
            "to": msg.to,
            "body": msg.body,
            "subject": msg.subject,
            "template_code": msg.template_code,
            "sender": msg.sender,
            "message_type": msg.sms_kind.value if msg.sms_kind else None,
            "reference": msg.idempotency_key,
            "custom_fields": {k: v for k, v in {"workflow_id": msg.workflow_id, "step": msg.step}.items() if v},
        }
        if msg.fallback:
            payload["fallback"] = [
                {
                    "channel": f.channel.value,
                    "body": f.body,
                    "subject": f.subject,
                    "message_type": f.sms_kind.value if f.sms_kind else None,
                }
                for f in msg.fallback
            ]
        headers = json_headers({"Authorization": f"Bearer {self._api_key}", "Idempotency-Key": msg.idempotency_key})
        try:
            resp = await self._client.post("/v1/messages", json=payload, headers=headers)
        except NOT_SENT_ERRORS as exc:
            return SendResult(status=SendStatus.REJECTED, error_class=ErrorClass.RETRY, error_code=type(exc).__name__)
        except httpx.TransportError as exc:
            # The request may have been written: only a lookup by key can tell.
            return SendResult(status=SendStatus.UNKNOWN, error_class=ErrorClass.UNKNOWN, error_code=type(exc).__name__)
        return self._result(resp)

    def _result(self, resp: httpx.Response) -> SendResult:
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if resp.status_code in (200, 201, 202):
            mode = ReceiptMode.NONE if data.get("receipt") == "none" else ReceiptMode.WEBHOOK
            return SendResult(status=SendStatus.ACCEPTED, provider_message_id=data.get("message_id"), receipt=mode)
        error = data.get("error") or {}
        code = str(error.get("code") or f"HTTP_{resp.status_code}")
        if resp.status_code in (409, 429) or resp.status_code >= 500:
            error_class = ErrorClass.RETRY
        elif resp.status_code in (401, 403):
            error_class = ErrorClass.CONFIG
        else:
            error_class = ERROR_CLASSES.get(code, ErrorClass.REQUEST)
        return SendResult(
            status=SendStatus.REJECTED,
            error_class=error_class,
            error_code=code,
            error_message=error.get("message"),
            retry_after=retry_after(resp.headers),
        )

    async def lookup(self, idempotency_key: str) -> SendResult | None:
        """Find an earlier send by idempotency key.

        Raises:
            ProviderUnavailable: the sandbox cannot answer now.
        """
        try:
            resp = await self._client.get(
                f"/v1/messages/by-reference/{idempotency_key}",
                headers={"Authorization": f"Bearer {self._api_key}"},
            )
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"sandbox lookup failed: {type(exc).__name__}") from exc
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise ProviderUnavailable(f"sandbox lookup answered {resp.status_code}")
        data = resp.json()
        return SendResult(
            status=SendStatus.ACCEPTED,
            provider_message_id=data["id"],
            receipt=ReceiptMode.WEBHOOK,
        )

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> list[DeliveryReceipt | InvalidReceipt]:
        """Verify and parse a receipt webhook, item by item.

        Raises:
            SignatureError: forged, missing or stale signature.
            WebhookError: the body is not a receipt batch.
        """
        lower = {k.lower(): v for k, v in headers.items()}
        verify(self._secret, lower.get("x-sandbox-timestamp"), lower.get("x-sandbox-signature"), body)
        try:
            batch = json.loads(body)
        except (ValueError, RecursionError):
            raise WebhookError("receipt batch is not JSON") from None
        items = batch.get("receipts") if isinstance(batch, dict) else None
        if not isinstance(items, list):
            raise WebhookError('receipt batch must be {"receipts": [...]}')
        if len(items) > MAX_BATCH:
            raise WebhookError(f"receipt batch has more than {MAX_BATCH} items")
        return [self._receipt(i, item) for i, item in enumerate(items)]

    def _receipt(self, index: int, item: object) -> DeliveryReceipt | InvalidReceipt:
        try:
            r = _ReceiptIn.model_validate(item)
            return DeliveryReceipt.model_validate(
                {
                    "provider": self.name,
                    "provider_message_id": r.message_id,
                    "idempotency_key": r.reference,
                    "status": r.status,
                    "error_code": r.error_code,
                    "error_class": ERROR_CLASSES.get(r.error_code or "", ErrorClass.FALLBACK)
                    if r.status is ReceiptStatus.FAILED
                    else None,
                    "occurred_at": r.occurred_at,
                    "workflow_id": r.custom_fields.get("workflow_id"),
                    "step": r.custom_fields.get("step"),
                    "channel": r.channel,
                },
                context=EDGE,
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"][:3]) or "receipt"
            return InvalidReceipt(index=index, error=f"{where}: {first['msg']}"[:200])
