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

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, FastAPI, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from temporalio.service import RPCError

from durable_journeys.activities import Store
from durable_journeys.providers import (
    EDGE,
    PlainText,
    ProviderRegistry,
)
from durable_journeys.providers.docs import api_app
from durable_journeys.starter.errors import InvalidInput, JourneyNotFound
from durable_journeys.starter.http_edge import (
    BODY_TIMEOUT_SECONDS,
    RateLimiter,
    RequestMetrics,
    bearer_token,
    body_reader,
    caller_of,
    parse_json,
)
from durable_journeys.starter.inputs import checked_event
from durable_journeys.starter.journeys import Journeys
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.tokens import TokenError, inbox_token_subject
from durable_journeys.starter.webhook_receipts import ReceiptsAnswer, receipts_router
from durable_journeys.workflows import CustomerId, EventType, OrderId, post_purchase_id

log = structlog.get_logger("starter.webhooks")

__all__ = ["BODY_TIMEOUT_SECONDS", "RateLimiter", "ReceiptsAnswer", "create_webhook_app", "webhook_app_for"]

MAX_EVENT_DEPTH = 10  # the envelope's two levels plus the data's eight
MAX_INBOX_ID = 2**31 - 1  # the inbox id column is a 32-bit integer on PostgreSQL


class EventIn(BaseModel):
    """``POST /events`` body: an order event (with ``order_id``) or a customer event (with ``customer_id``)."""

    model_config = ConfigDict(extra="forbid")

    type: EventType
    order_id: OrderId | None = None
    customer_id: CustomerId | None = None
    event_id: PlainText | None = Field(default=None, min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)


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
        token = bearer_token(authorization)
        if not api_key or token is None or not hmac.compare_digest(token.encode(), api_key.encode()):
            raise HTTPException(401, "invalid API key")

    @router.post("/events", status_code=202)
    async def events(request: Request) -> dict[str, Any]:
        if limit is not None:
            limit.check(caller_of(request))
        check_key(request.headers.get("authorization"))  # before a byte of the body is read
        payload = parse_json(await read_body(request), max_depth=MAX_EVENT_DEPTH)
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
        token = bearer_token(authorization)
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
