"""The webhook app: provider receipts in, signals out; app events; in-app inboxes; health.

``POST /webhooks/{provider}`` verifies the provider's signature, records each receipt in the
message log, and signals the journey that sent the message (found through the log, never
through fields a caller controls). Duplicate receipts are harmless; a receipt for a journey
that has ended is recorded as late and answered 200, so the provider does not retry forever.

Who may call what (README "Security"):

- ``/webhooks/{provider}``: the provider, by its signature over the body.
- ``/events``: the shop's backend, with the server-to-server API key (checked before the body
  is read).
- ``/inbox/{customer_id}``: the customer's app, with an inbox token minted for that customer.

Every body is size-limited and must arrive within ``BODY_TIMEOUT_SECONDS``; every answer to bad
input is a short 4xx, never a dump of the schema and never a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, FastAPI, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from temporalio.service import RPCError

from durable_journeys.activities import DeliveryReceipt, Store
from durable_journeys.activities.metrics import WEBHOOK_REQUESTS
from durable_journeys.providers import (
    EDGE,
    AcknowledgingProvider,
    ConfigError,
    ConfirmingProvider,
    InvalidReceipt,
    PlainText,
    ProviderRegistry,
    ProviderUnavailable,
    ReceiptStatus,
    ReplayableSignatureProvider,
    SignatureError,
    WebhookError,
    json_depth,
)
from durable_journeys.providers.docs import api_app
from durable_journeys.starter.errors import InvalidInput, JourneyNotFound
from durable_journeys.starter.inputs import checked_event
from durable_journeys.starter.journeys import Journeys
from durable_journeys.starter.receipts import UNAVAILABLE, ReceiptIntake
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.tokens import TokenError, inbox_token_subject
from durable_journeys.workflows import CustomerId, EventType, OrderId, post_purchase_id

log = structlog.get_logger("starter.webhooks")

BODY_TIMEOUT_SECONDS = 10.0
MAX_EVENT_DEPTH = 10  # the envelope's two levels plus the data's eight
MAX_INBOX_ID = 2**31 - 1  # the inbox id column is a 32-bit integer on PostgreSQL


class ReceiptsAnswer(BaseModel):
    """What the webhook did with a batch of receipts."""

    received: int = 0
    signalled: int = 0
    duplicate: int = 0
    late: int = 0
    unknown: int = 0
    invalid: int = 0
    items: list[str] = Field(
        default_factory=list,
        description="per receipt, in batch order: signalled, late, unknown, or invalid: <why>",
    )


class EventIn(BaseModel):
    """``POST /events`` body: an order event (with ``order_id``) or a customer event (with ``customer_id``)."""

    model_config = ConfigDict(extra="forbid")

    type: EventType
    order_id: OrderId | None = None
    customer_id: CustomerId | None = None
    event_id: PlainText | None = Field(default=None, min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)


class RateLimiter:
    """Token buckets per caller: ``rate`` requests a second on average, ``burst`` at once.

    Callers are told how long to wait (429 with ``Retry-After``). At most ``max_callers`` buckets
    are kept (the least recently seen go first), so a flood from many addresses costs bounded memory.
    """

    def __init__(self, rate: float, burst: int, *, max_callers: int = 10_000) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.max_callers = max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # caller -> (tokens, at)

    def wait(self, caller: str, now: float | None = None) -> float:
        """Take a token for ``caller``: 0 when it may go on, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.pop(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self._buckets[caller] = (tokens - 1 if wait == 0 else tokens, now)
        while len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)
        return wait

    def check(self, caller: str) -> None:
        """Raise 429 with ``Retry-After`` when ``caller`` is over its rate."""
        wait = self.wait(caller)
        if wait > 0:
            raise HTTPException(429, "too many requests", headers={"Retry-After": str(max(1, math.ceil(wait)))})


def _caller(request: Request) -> str:
    """Who is calling, as the server sees it (the peer address; behind a proxy, the proxy's)."""
    return request.client.host if request.client else "-"


def _digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _json(body: bytes, *, max_depth: int) -> Any:
    """Parse a JSON body, refusing what is not JSON or nests deeper than ``max_depth`` (400)."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # also: integers of more than 4,300 digits
        raise HTTPException(400, "body is not valid JSON") from None
    if json_depth(value, max_depth) > max_depth:
        raise HTTPException(400, f"body nests deeper than {max_depth} levels")
    return value


def webhook_app_for(settings: Settings, journeys: Journeys, providers: ProviderRegistry) -> FastAPI:
    """The webhook app as the settings configure it (``journeys webhooks``, the embedded stack)."""
    return create_webhook_app(
        journeys,
        providers,
        api_key=settings.api_key.get_secret_value(),
        inbox_token_secret=settings.inbox_token_secret.get_secret_value(),
        max_body_bytes=settings.webhook_max_body_bytes,
        docs=settings.docs_enabled,
        events_limit=RateLimiter(settings.events_per_second, settings.events_burst),
        receipts_limit=RateLimiter(settings.receipts_per_second, settings.receipts_burst),
    )


def body_reader(max_body_bytes: int) -> Callable[[Request], Awaitable[bytes]]:
    """Reads a request body of at most ``max_body_bytes`` within ``BODY_TIMEOUT_SECONDS`` (413, 408)."""

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            raise HTTPException(413, "body too large")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(BODY_TIMEOUT_SECONDS):  # a stalled body holds no worker slot for long
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_body_bytes:
                        raise HTTPException(413, "body too large")
                    chunks.append(chunk)
        except TimeoutError:
            raise HTTPException(408, "request body took too long") from None
        return b"".join(chunks)

    return read_body


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
            limit.check(f"{provider_name[:64]}:{_caller(request)}")
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
            _digest(signed),
            _digest(body),
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


def events_router(
    journeys: Journeys,
    api_key: str,
    read_body: Callable[[Request], Awaitable[bytes]],
    limit: RateLimiter | None = None,
) -> APIRouter:
    """``POST /events``: the shop backend's events, with the server-to-server key.

    An order event answers ``{"delivered": 1, "outcome": "delivered"}`` when the order's running
    journey got it; else ``delivered: 0`` and why: ``duplicate`` (that ``event_id`` reached it
    before), ``limited`` (it took as many events of the type as it can use) or ``ended``; 404 when
    no journey for the order was ever started. A customer event answers how many journeys got it.
    """
    router = APIRouter()

    def check_key(authorization: str | None) -> None:
        token = _bearer(authorization)
        if not api_key or token is None or not hmac.compare_digest(token.encode(), api_key.encode()):
            raise HTTPException(401, "invalid API key")

    @router.post("/events", status_code=202)
    async def events(request: Request) -> dict[str, Any]:
        if limit is not None:
            limit.check(_caller(request))
        check_key(request.headers.get("authorization"))  # before a byte of the body is read
        payload = _json(await read_body(request), max_depth=MAX_EVENT_DEPTH)
        try:
            body = EventIn.model_validate(payload, context=EDGE)
        except ValidationError as exc:
            raise HTTPException(422, str(InvalidInput.from_validation("event", exc))[:400]) from None
        try:
            if body.type.value.startswith("order."):
                if body.order_id is None:
                    raise HTTPException(422, "order events need order_id")
                event = checked_event(
                    {
                        "type": body.type,
                        "data": body.data,
                        "event_id": body.event_id or f"{body.type.value}:{body.order_id}",
                    }
                )
                delivery = await journeys.signal_event(post_purchase_id(body.order_id), event)
                return {"delivered": int(bool(delivery)), "outcome": delivery.value}
            if body.customer_id is None:
                raise HTTPException(422, "customer events need customer_id")
            return {
                "delivered": await journeys.emit(
                    body.customer_id, {"type": body.type, "event_id": body.event_id, "data": body.data}
                )
            }
        except InvalidInput as exc:
            raise HTTPException(422, str(exc)[:400]) from None
        except JourneyNotFound:
            raise HTTPException(404, "no journey for that order" if body.order_id else "unknown customer") from None

    return router


def inbox_router(store: Store, inbox_token_secret: str) -> APIRouter:
    """``/inbox/{customer_id}``: one customer's in-app inbox, with that customer's inbox token."""
    router = APIRouter()

    def inbox_owner(authorization: str | None, customer_id: str) -> None:
        """Only a valid inbox token minted for this customer opens this inbox."""
        token = _bearer(authorization)
        if token is None:
            raise HTTPException(401, "inbox token required")
        try:
            subject = inbox_token_subject(inbox_token_secret, token)
        except TokenError:
            raise HTTPException(401, "invalid inbox token") from None
        if not hmac.compare_digest(subject.encode(), customer_id.encode()):
            raise HTTPException(403, "this token opens another customer's inbox")

    @router.get("/inbox/{customer_id}")
    async def inbox(customer_id: CustomerId, request: Request, unread: bool = False) -> dict[str, Any]:
        inbox_owner(request.headers.get("authorization"), customer_id)
        messages = await store.inbox(customer_id, unread_only=unread)
        return {"messages": [m.model_dump(mode="json") for m in messages]}

    @router.post("/inbox/{customer_id}/{message_id}/read")
    async def inbox_read(
        customer_id: CustomerId, message_id: Annotated[int, Path(ge=1, le=MAX_INBOX_ID)], request: Request
    ) -> dict[str, bool]:
        inbox_owner(request.headers.get("authorization"), customer_id)
        if not await store.mark_inbox_read(customer_id, message_id):
            raise HTTPException(404, "no such message")
        return {"read": True}

    return router


class RequestMetrics:
    """Counts every request by route, provider (for receipts) and status (``journeys_webhook_requests``).

    Labels are bounded: a route from a fixed set, a provider only if it is configured.
    """

    def __init__(self, app: Any, providers: frozenset[str]) -> None:
        self.app = app
        self.providers = providers

    def labels(self, path: str) -> tuple[str, str]:
        parts = path.strip("/").split("/")
        route = parts[0] if parts[0] in ("webhooks", "events", "inbox", "healthz") else "other"
        provider = parts[1] if route == "webhooks" and len(parts) > 1 and parts[1] in self.providers else "-"
        return route, provider

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            WEBHOOK_REQUESTS.labels(*self.labels(scope.get("path", "")), str(status["code"])).inc()


def create_webhook_app(
    journeys: Journeys,
    providers: ProviderRegistry,
    *,
    api_key: str,
    inbox_token_secret: str = "",
    max_body_bytes: int = 256 * 1024,
    docs: bool = False,
    events_limit: RateLimiter | None = None,
    receipts_limit: RateLimiter | None = None,
) -> FastAPI:
    """Build the webhook ASGI app.

    Args:
        journeys: the facade (its Temporal client and store are used).
        providers: the providers whose webhooks are accepted.
        api_key: the server-to-server key the shop's backend sends as ``Authorization: Bearer
            <key>`` on ``/events``. Empty: nothing is accepted.
        inbox_token_secret: verifies per-customer inbox tokens on ``/inbox``. Empty: the inbox
            routes are not mounted (and the app says so at start).
        max_body_bytes: larger bodies are refused with 413 before they are parsed.
        docs: serve ``/docs`` and ``/openapi.json``.
        events_limit: per-caller rate of ``/events`` (429 with ``Retry-After`` past it); None: no limit.
        receipts_limit: per-caller, per-provider rate of ``/webhooks/{provider}``; None: no limit.
    """
    app = api_app("Durable Journeys webhooks", docs=docs)

    @app.exception_handler(RPCError)
    @app.exception_handler(SQLAlchemyError)
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        # Temporal or the database failed, not the caller: ask for a retry, and log only the
        # class (a database error's text can carry row values).
        log.warning("webhook.dependency_unavailable", path=request.url.path, error=type(exc).__name__)
        return JSONResponse({"detail": "service unavailable, retry"}, 503, headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def short_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ())[:4])
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"[:200]}, 422)

    app.add_middleware(RequestMetrics, providers=frozenset(providers.names()))
    read_body = body_reader(max_body_bytes)
    app.include_router(receipts_router(journeys, providers, read_body, receipts_limit))
    app.include_router(events_router(journeys, api_key, read_body, events_limit))
    if inbox_token_secret:
        app.include_router(inbox_router(journeys.store, inbox_token_secret))
    else:
        log.info("webhook.inbox_not_served", hint="set JOURNEYS_INBOX_TOKEN_SECRET to serve /inbox")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
