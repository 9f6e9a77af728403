"""The webhook app: provider receipts in, signals out; app events; health.

``POST /webhooks/{provider}`` verifies the provider's signature, records each receipt in the
message log, and signals the journey that sent the message (found through the log, never
through fields a caller controls). Duplicate receipts are harmless; a receipt for a journey
that has ended is recorded as late and answered 200, so the provider does not retry forever.
"""

from __future__ import annotations

import asyncio
import hmac
from collections import Counter
from typing import Any

import structlog
from fastapi import FastAPI, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from temporalio.service import RPCError, RPCStatusCode

from activities import DeliveryReceipt, ReceiptRecord, Store
from providers import ConfigError, ProviderRegistry, ReceiptStatus, SignatureError, WebhookError
from starter.errors import JourneyNotFound
from starter.journeys import Journeys
from workflows import CustomerId, EventType, JourneyEvent, JourneyWorkflow, OrderId, post_purchase_id

log = structlog.get_logger("starter.webhooks")


class ReceiptsAnswer(BaseModel):
    """What the webhook did with a batch of receipts."""

    received: int = 0
    signalled: int = 0
    duplicate: int = 0
    late: int = 0
    unknown: int = 0


class EventIn(BaseModel):
    """``POST /events`` body: an order event (with ``order_id``) or a customer event (with ``customer_id``)."""

    model_config = ConfigDict(extra="forbid")

    type: EventType
    order_id: OrderId | None = None
    customer_id: CustomerId | None = None
    event_id: str | None = Field(default=None, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)


def create_webhook_app(
    journeys: Journeys, providers: ProviderRegistry, *, api_key: str, max_body_bytes: int = 256 * 1024
) -> FastAPI:
    """Build the webhook ASGI app.

    Args:
        journeys: the facade (its Temporal client and store are used).
        providers: the providers whose webhooks are accepted.
        api_key: the key the app's backend sends as ``Authorization: Bearer <key>`` on ``/events``.
        max_body_bytes: larger bodies are refused with 413 before they are parsed.
    """
    app = FastAPI(title="Durable Journeys webhooks", version="1")
    store: Store = journeys.store

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            raise HTTPException(413, "body too large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                raise HTTPException(413, "body too large")
        return body

    @app.post("/webhooks/{provider_name}", response_model=ReceiptsAnswer)
    async def receipts(provider_name: str, request: Request) -> ReceiptsAnswer:
        try:
            provider = providers.get(provider_name)
        except ConfigError:
            raise HTTPException(404, "unknown provider") from None
        body = await read_body(request)
        try:
            parsed = provider.parse_webhook(dict(request.headers), body)
        except SignatureError as exc:
            log.warning("webhook.signature_refused", provider=provider_name, error=str(exc))
            raise HTTPException(401, "invalid signature") from None
        except WebhookError as exc:
            raise HTTPException(400, str(exc)) from None
        records = await store.record_receipts(parsed)
        outcomes = Counter(await asyncio.gather(*(
            signal_receipt(provider_name, receipt, record) for receipt, record in zip(parsed, records, strict=True)
        )))
        if outcomes["unavailable"]:
            # Recorded; the provider posts the batch again and the journeys get their signals then.
            raise HTTPException(503, "journey service unavailable, retry")
        return ReceiptsAnswer(
            received=len(parsed), signalled=outcomes["signalled"], late=outcomes["late"],
            unknown=outcomes["unknown"], duplicate=sum(1 for r in records if r is not None and r.duplicate),
        )

    async def signal_receipt(provider_name: str, receipt: DeliveryReceipt, record: ReceiptRecord | None) -> str:
        """Signal the journey that sent the message; what happened: ``signalled``, ``late``,
        ``unknown`` or ``unavailable``."""
        if record is None:
            log.info("receipt.unknown", provider=provider_name, message_id=receipt.provider_message_id)
            return "unknown"
        msg = record.message
        # The journey is told what the log holds (the first receipt wins), so receipts signalled
        # concurrently, or out of order, cannot tell it two different outcomes.
        logged = ReceiptStatus(msg.receipt_status)
        enriched = receipt.model_copy(
            update={"idempotency_key": msg.idempotency_key, "workflow_id": msg.workflow_id,
                    "step": msg.step, "channel": msg.channel, "status": logged,
                    "error_code": msg.receipt_error_code,
                    "error_class": receipt.error_class if receipt.status is logged else None}
        )
        try:
            await journeys.client.get_workflow_handle(msg.workflow_id).signal(JourneyWorkflow.on_receipt, enriched)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                log.warning("receipt.signal_failed", workflow_id=msg.workflow_id, status=exc.status.name)
                return "unavailable"
            log.info("receipt.late", workflow_id=msg.workflow_id, step=msg.step, channel=msg.channel)
            return "late"  # the journey has ended: the log row keeps the receipt
        log.info("receipt.signalled", workflow_id=msg.workflow_id, step=msg.step,
                 channel=msg.channel, status=logged.value, late=record.late)
        return "signalled"

    def check_key(authorization: str | None) -> None:
        expected = f"Bearer {api_key}"
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
            raise HTTPException(401, "invalid API key")

    @app.post("/events", status_code=202)
    async def events(body: EventIn, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        check_key(authorization)
        if body.type.value.startswith("order."):
            if body.order_id is None:
                raise HTTPException(422, "order events need order_id")
            event = JourneyEvent(
                type=body.type, event_id=body.event_id or f"{body.type.value}:{body.order_id}", data=body.data
            )
            try:
                delivered = await journeys.signal_event(post_purchase_id(body.order_id), event)
            except JourneyNotFound:
                raise HTTPException(404, "no journey for that order") from None
            return {"delivered": int(delivered)}
        if body.customer_id is None:
            raise HTTPException(422, "customer events need customer_id")
        event = JourneyEvent(type=body.type, event_id=body.event_id, data=body.data)
        try:
            return {"delivered": await journeys.emit(body.customer_id, event)}
        except JourneyNotFound:
            raise HTTPException(404, "unknown customer") from None

    @app.get("/inbox/{customer_id}")
    async def inbox(
        customer_id: CustomerId, unread: bool = False, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        check_key(authorization)
        messages = await store.inbox(customer_id, unread_only=unread)
        return {"messages": [m.model_dump(mode="json") for m in messages]}

    @app.post("/inbox/{customer_id}/{message_id}/read")
    async def inbox_read(
        customer_id: CustomerId, message_id: int, authorization: str | None = Header(default=None)
    ) -> dict[str, bool]:
        check_key(authorization)
        if not await store.mark_inbox_read(customer_id, message_id):
            raise HTTPException(404, "no such message")
        return {"read": True}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
