"""``POST /webhooks/{provider}``: a provider's receipts, verified by its signature, recorded and signalled."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from durable_journeys.activities import DeliveryReceipt
from durable_journeys.providers import (
    AcknowledgingProvider,
    ConfigError,
    ConfirmingProvider,
    InvalidReceipt,
    ProviderRegistry,
    ProviderUnavailable,
    ReceiptStatus,
    ReplayableSignatureProvider,
    SignatureError,
    WebhookError,
)
from durable_journeys.starter.http_edge import RateLimiter, caller_of, digest
from durable_journeys.starter.journeys import Journeys
from durable_journeys.starter.receipts import UNAVAILABLE, ReceiptIntake

log = structlog.get_logger("starter.webhooks")


class ReceiptsAnswer(BaseModel):
    """What the webhook did with a batch of receipts."""

    received: int = 0
    signalled: int = 0
    duplicate: int = 0
    late: int = 0
    logged: int = 0
    unknown: int = 0
    invalid: int = 0
    items: list[str] = Field(
        default_factory=list,
        description="per receipt, in batch order: signalled, late, logged, interim, unknown, or invalid: <why>",
    )


def receipts_router(
    journeys: Journeys,
    providers: ProviderRegistry,
    read_body: Callable[[Request], Awaitable[bytes]],
    limit: RateLimiter | None = None,
) -> APIRouter:
    """``POST /webhooks/{provider}``: verified receipts into the log, signals to the journeys.

    Only providers that some channel is routed through take receipts: a configured provider
    nobody sends through (the sandbox in production) has no webhook.
    """
    router = APIRouter()
    intake = ReceiptIntake(journeys)
    routed = frozenset(providers.routed())
    pending: set[asyncio.Future[list[str]]] = set()  # signals that outlived their webhook's answer

    @router.post(
        "/webhooks/{provider_name}",
        response_model=None,
        responses={200: {"model": ReceiptsAnswer, "description": "what became of each receipt (Bizgo: its ack)"}},
    )
    async def receipts(
        provider_name: Annotated[str, Path(max_length=64)], request: Request
    ) -> ReceiptsAnswer | JSONResponse:
        if limit is not None:
            limit.check(f"{provider_name[:64]}:{caller_of(request)}")
        if provider_name not in routed:
            raise HTTPException(404, "unknown provider")
        try:
            provider = providers.get(provider_name)
        except ConfigError:
            raise HTTPException(404, "unknown provider") from None
        body = await read_body(request)
        headers = dict(request.headers)
        try:
            parsed = provider.parse_webhook(headers, body)
        except SignatureError as exc:
            log.warning("webhook.signature_refused", provider=provider_name, error=str(exc))
            raise HTTPException(401, "invalid signature") from None
        except WebhookError as exc:
            raise HTTPException(400, str(exc)[:200]) from None
        if isinstance(provider, ReplayableSignatureProvider):
            await refuse_replay(provider, headers, body)
        if isinstance(provider, ConfirmingProvider):
            parsed = await confirmed(provider, parsed)
        # Only what this provider's verified webhook said can settle this provider's messages.
        good = [r for r in parsed if isinstance(r, DeliveryReceipt) and r.provider == provider.name]
        records = await intake.record(good)
        signalling = asyncio.ensure_future(intake.signal_all(provider_name, good, records))
        if isinstance(provider, AcknowledgingProvider):
            # Recorded: answer within the provider's deadline; signals still under way go on after it.
            try:
                signalled = await asyncio.wait_for(asyncio.shield(signalling), timeout=provider.ack_within)
            except TimeoutError:
                pending.add(signalling)
                signalling.add_done_callback(pending.discard)
                log.info("webhook.answered_before_signals", provider=provider_name, receipts=len(good))
            else:
                if UNAVAILABLE in signalled:
                    raise HTTPException(503, "journey service unavailable, retry")
            return JSONResponse(provider.acknowledge(parsed) or {"received": len(parsed)})
        outcomes = dict(zip(map(id, good), await signalling, strict=True))
        counted = Counter(outcomes.values())
        if counted[UNAVAILABLE]:
            # Recorded; the provider posts the batch again and the journeys get their signals then.
            raise HTTPException(503, "journey service unavailable, retry")
        items = [
            outcomes.get(id(r), "invalid: from another provider")
            if isinstance(r, DeliveryReceipt)
            else f"invalid: {r.error}"
            for r in parsed
        ]
        if len(items) != len(good):
            log.warning("webhook.invalid_receipts", provider=provider_name, invalid=len(items) - len(good))
        return ReceiptsAnswer(
            received=len(parsed),
            signalled=counted["signalled"],
            late=counted["late"],
            logged=counted["logged"],
            unknown=counted["unknown"],
            duplicate=sum(1 for r in records if r is not None and r.duplicate),
            invalid=len(parsed) - len(good),
            items=items,
        )

    async def refuse_replay(provider: ReplayableSignatureProvider, headers: dict[str, str], body: bytes) -> None:
        """401 for a signature seen before with another body: its signature does not cover the body."""
        signed = provider.signature_id(headers)
        if signed is None:
            return
        first = await journeys.store.remember_signature(
            provider.name,  # type: ignore[attr-defined]
            digest(signed),
            digest(body),
            keep=timedelta(seconds=2 * provider.replay_window),
        )
        if not first:
            log.warning("webhook.signature_replayed", provider=getattr(provider, "name", "-"))
            raise HTTPException(401, "signature already used for another body")

    async def confirmed(
        provider: ConfirmingProvider, parsed: list[DeliveryReceipt | InvalidReceipt]
    ) -> list[DeliveryReceipt | InvalidReceipt]:
        """Failures as the provider's inquiry confirms them (a failure makes the journey send elsewhere)."""
        out: list[DeliveryReceipt | InvalidReceipt] = []
        for index, receipt in enumerate(parsed):
            if not isinstance(receipt, DeliveryReceipt) or receipt.status is not ReceiptStatus.FAILED:
                out.append(receipt)
                continue
            try:
                found = await provider.confirm_receipt(receipt)
            except ProviderUnavailable:
                raise HTTPException(503, "cannot confirm the report now, retry", headers={"Retry-After": "5"}) from None
            if found is None or found.provider_message_id != receipt.provider_message_id:
                log.warning("webhook.report_not_confirmed", provider=receipt.provider)
                out.append(InvalidReceipt(index=index, error="not confirmed by the provider's inquiry"))
            else:
                out.append(
                    found.model_copy(update={"idempotency_key": receipt.idempotency_key or found.idempotency_key})
                )
        return out

    return router
