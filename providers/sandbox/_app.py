"""The sandbox provider service: an aggregator-like HTTP API that records sends and posts receipts.

Its behaviour is chosen by the recipient, like a payment provider's test cards (README,
"Sandbox recipients"). It honours idempotency keys (the same key returns the first answer and
sends nothing) and answers a status lookup by key, so an UNKNOWN outcome can be reconciled.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import httpx
import structlog
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from durable_journeys.providers.base import Channel
from durable_journeys.providers.docs import api_app
from durable_journeys.providers.signing import sign

log = structlog.get_logger("providers.sandbox")

KAKAO_CHANNELS = frozenset({Channel.ALIMTALK, Channel.BRAND_MESSAGE})
TRANSIENT_FAILURES = 2  # recipient ...0004 sees this many 503s per message


class ReceiptTiming(StrEnum):
    """When the sandbox posts a delivery receipt."""

    # Before the send is answered: under Temporal's time-skipping server a receipt that comes
    # after the send activity returned loses the race against the receipt timer (docs/architecture.md §11).
    BEFORE_RESPONSE = "before_response"
    AFTER_RESPONSE = "after_response"


@dataclass
class SandboxConfig:
    """How a sandbox instance behaves."""

    api_key: str = ""  # every endpoint but /healthz needs it; empty: nothing is accepted
    webhook_url: str | None = None
    webhook_secret: str = ""  # receipts are signed with it; empty: receipts are not posted
    docs: bool = False  # serve /docs and /openapi.json
    receipt_timing: ReceiptTiming = ReceiptTiming.AFTER_RESPONSE
    receipt_delay_seconds: float = 0.2
    webhook_attempts: int = 5
    send_latency_seconds: float = 0.0
    # Like aggregators' delivery reports, receipts due while a post is in flight go out
    # together in the next post (up to this many): no added latency when traffic is light.
    receipt_batch_max: int = 100


class FallbackBody(BaseModel):
    """One message of a gateway chain: sent to the same recipient if the one before fails."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    body: str = Field(max_length=10_000)
    subject: str | None = Field(default=None, max_length=200)
    message_type: str | None = Field(default=None, max_length=10)


class SendBody(BaseModel):
    """``POST /v1/messages`` body."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    to: str = Field(min_length=1, max_length=320)
    body: str = Field(max_length=10_000)
    subject: str | None = Field(default=None, max_length=200)
    template_code: str | None = Field(default=None, max_length=100)
    sender: str | None = Field(default=None, max_length=100)
    message_type: str | None = Field(default=None, max_length=10)
    reference: str | None = Field(default=None, max_length=300)
    custom_fields: dict[str, Annotated[str, Field(max_length=300)]] = Field(default_factory=dict, max_length=10)
    # Gateway fallback, like aggregators' own: tried in order when a message is refused or fails.
    fallback: list[FallbackBody] = Field(default_factory=list, max_length=3)


class OutageBody(BaseModel):
    """``POST /v1/control/outage`` and ``/v1/control/latency`` body."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=3600)


@dataclass
class Answer:
    """A recorded HTTP answer, replayed for a repeated idempotency key."""

    status_code: int
    body: dict[str, Any]


@dataclass
class SandboxState:
    """Everything the sandbox has seen."""

    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)
    by_reference: dict[str, str] = field(default_factory=dict)
    transient_counts: dict[str, int] = field(default_factory=dict)
    receipts_posted: list[dict[str, Any]] = field(default_factory=list)
    outage_until: float = 0.0
    in_progress: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    outbox: list[dict[str, Any]] = field(default_factory=list)  # receipts due, not yet posted
    flushing: bool = False


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def _error(status: int, code: str, message: str) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message}})


def _behaviour(body: SendBody, state: SandboxState, key: str) -> tuple[Answer | None, str | None]:
    """Decide the sandbox's answer: (error answer, or None to accept; receipt outcome code).

    The receipt outcome is ``"delivered"``, ``"none"`` or a failure code.
    """
    to = body.to.strip()
    if body.channel is Channel.EMAIL:
        if to.split("@", 1)[0].lower() == "bounce":
            return None, "HARD_BOUNCE"
        return None, "delivered"
    if body.channel in (Channel.PUSH, Channel.WEB_PUSH):
        if to == "unregistered":
            return _error(404, "UNREGISTERED", "push token is no longer registered"), None
        return None, "delivered"
    if body.channel in (Channel.IN_APP, Channel.WEBHOOK):
        return None, "delivered"
    digits = _digits(to)
    if not 9 <= len(digits) <= 12:
        return _error(400, "INVALID_NUMBER", "phone number is not valid"), None
    kakao = body.channel in KAKAO_CHANNELS
    match digits[-4:]:
        case "0001" if kakao:
            return _error(422, "NOT_KAKAO_USER", "recipient is not a KakaoTalk user"), None
        case "0002" if kakao:
            return None, "none"
        case "0003":
            return _error(422, "BLOCKED", "recipient rejects every message"), None
        case "0004":
            seen = state.transient_counts.get(key, 0)
            if seen < TRANSIENT_FAILURES:
                state.transient_counts[key] = seen + 1
                return _error(503, "TEMPORARILY_UNAVAILABLE", "try again"), None
            return None, "delivered"
        case "0005":
            return _error(400, "INVALID_NUMBER", "phone number does not exist"), None
        case "0006" if body.channel is Channel.ALIMTALK:
            return None, "KAKAO_DELIVERY_FAILED"
    return None, "delivered"


def _receipt_for(message: dict[str, Any], outcome: str) -> dict[str, Any]:
    """The receipt for ``message`` (outcome ``"delivered"`` or a failure code); marks the message."""
    message["receipt"] = "delivered" if outcome == "delivered" else "failed"
    return {
        "message_id": message["id"],
        "reference": message["reference"],
        "channel": message.get("delivered_channel") or message["channel"],
        "status": message["receipt"],
        "error_code": None if outcome == "delivered" else outcome,
        "occurred_at": datetime.now(UTC).isoformat(),
        "custom_fields": message["custom_fields"],
    }


class ReceiptOutbox:
    """Signed delivery receipts on their way to the webhook.

    Receipts due while a post is in flight wait in the outbox and go out together in the next
    post (up to ``receipt_batch_max``), like aggregators' delivery reports; one flusher runs at a
    time. A post is retried on 5xx answers and transport errors, with backoff.
    """

    def __init__(self, cfg: SandboxConfig, state: SandboxState, client: httpx.AsyncClient | None) -> None:
        """Post with ``client`` (one is made on first use when None)."""
        self._cfg = cfg
        self._state = state
        self._client = client

    @property
    def enabled(self) -> bool:
        """Receipts are posted only with a webhook URL and a secret to sign them with."""
        return bool(self._cfg.webhook_url and self._cfg.webhook_secret)

    def schedule(self, message: dict[str, Any], outcome: str) -> None:
        """Post ``message``'s receipt after the configured delay, in the background."""
        task = asyncio.create_task(self._deliver_later(message, outcome))
        self._state.tasks.add(task)
        task.add_done_callback(self._state.tasks.discard)

    async def post_now(self, message: dict[str, Any], outcome: str) -> None:
        """Post ``message``'s receipt before returning."""
        await self._post([_receipt_for(message, outcome)])

    async def _deliver_later(self, message: dict[str, Any], outcome: str) -> None:
        await asyncio.sleep(self._cfg.receipt_delay_seconds)
        self._state.outbox.append(_receipt_for(message, outcome))
        if not self._state.flushing:
            await self._flush()

    async def _flush(self) -> None:
        """Post what is due, in batches, until the outbox is empty."""
        state = self._state
        state.flushing = True
        try:
            while state.outbox:
                batch = state.outbox[: self._cfg.receipt_batch_max]
                del state.outbox[: len(batch)]
                await self._post(batch)
        finally:
            state.flushing = False

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10)
        return self._client

    async def _post(self, receipts: list[dict[str, Any]]) -> None:
        """POST one signed batch, retrying 5xx and transport errors."""
        cfg = self._cfg
        assert cfg.webhook_url
        payload = json.dumps({"receipts": receipts}).encode()
        for attempt in range(cfg.webhook_attempts):
            ts = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Sandbox-Timestamp": str(ts),
                "X-Sandbox-Signature": sign(cfg.webhook_secret, ts, payload),
            }
            try:
                resp = await self._http().post(cfg.webhook_url, content=payload, headers=headers)
            except httpx.HTTPError as exc:
                log.warning("sandbox.receipt_post_failed", error=type(exc).__name__, attempt=attempt)
            else:
                if resp.status_code < 500:
                    self._state.receipts_posted.extend({**r, "http_status": resp.status_code} for r in receipts)
                    return
                log.warning("sandbox.receipt_rejected", status=resp.status_code, attempt=attempt)
            await asyncio.sleep(min(0.2 * 2**attempt, 5))


class Sandbox:
    """The sandbox's send logic: outages, idempotency keys, recipient behaviour, receipts."""

    def __init__(self, cfg: SandboxConfig, state: SandboxState, outbox: ReceiptOutbox) -> None:
        """Serve with ``cfg``, recording into ``state``; receipts go through ``outbox``."""
        self.cfg = cfg
        self.state = state
        self.outbox = outbox

    async def send(self, body: SendBody, idempotency_key: str | None) -> JSONResponse:
        """Answer one ``POST /v1/messages``."""
        state = self.state
        if time.monotonic() < state.outage_until:
            return JSONResponse(
                {"error": {"code": "OUTAGE", "message": "service unavailable"}},
                503,
                headers={"Retry-After": "1"},
            )
        key = idempotency_key or body.reference or uuid.uuid4().hex
        if key in state.answers:  # a repeat: the first answer, nothing sent again
            first = state.answers[key]
            return JSONResponse(first.body, first.status_code, headers={"Idempotent-Replayed": "true"})
        if key in state.in_progress:  # the same key is being processed right now
            return JSONResponse(
                {"error": {"code": "IDEMPOTENCY_IN_PROGRESS", "message": "retry later"}},
                409,
                headers={"Retry-After": "1"},
            )
        state.in_progress.add(key)
        try:
            if self.cfg.send_latency_seconds:
                # A slow provider: the send is taken, then processed; a client that gives up
                # meanwhile does not stop it (the case reconciliation by key exists for).
                await asyncio.sleep(self.cfg.send_latency_seconds)
            return await self._accept(body, key)
        finally:
            state.in_progress.discard(key)

    async def _accept(self, body: SendBody, key: str) -> JSONResponse:
        state = self.state
        error, outcome = _behaviour(body, state, key)
        delivered_on = body.channel
        for step in body.fallback:  # the sandbox's own fallback: the next message if this one fails
            if error is not None and error.status_code >= 500:
                break  # the whole request is to be retried
            if error is None and outcome == "delivered":
                break
            delivered_on = step.channel
            error, outcome = _behaviour(
                body.model_copy(update={"channel": step.channel, "body": step.body}), state, key
            )
        state.attempts.append({"key": key, "channel": body.channel, "to": body.to, "error": error and error.body})
        if error is not None:
            if error.status_code < 500:
                state.answers[key] = error
            return JSONResponse(error.body, error.status_code)
        message = {
            "id": f"sbx_{uuid.uuid4().hex}",
            "reference": key,
            "status": "accepted",
            "receipt": None,
            "accepted_at": datetime.now(UTC).isoformat(),
            **body.model_dump(mode="json"),
        }
        message["reference"] = key
        message["delivered_channel"] = delivered_on.value  # the receipt names it (a gateway chain)
        state.messages[message["id"]] = message
        state.by_reference[key] = message["id"]
        answer = Answer(
            202,
            # ...0002 is told a receipt will come, and none ever does: the receipt-timeout path.
            {"message_id": message["id"], "status": "accepted", "receipt": "webhook"},
        )
        state.answers[key] = answer
        if outcome is not None and outcome != "none" and self.outbox.enabled:
            if self.cfg.receipt_timing is ReceiptTiming.BEFORE_RESPONSE:
                await self.outbox.post_now(message, outcome)
            else:
                self.outbox.schedule(message, outcome)
        return JSONResponse(answer.body, answer.status_code)


def create_sandbox_app(
    config: SandboxConfig | None = None, *, receipt_client: httpx.AsyncClient | None = None
) -> FastAPI:
    """Build the sandbox ASGI app.

    Args:
        config: behaviour; defaults suit a local run.
        receipt_client: the HTTP client receipts are posted with; pass one with an
            ``httpx.ASGITransport`` to reach an in-process webhook app.
    """
    cfg = config or SandboxConfig()
    state = SandboxState()
    sandbox = Sandbox(cfg, state, ReceiptOutbox(cfg, state, receipt_client))

    def authorized(authorization: str | None = Header(default=None)) -> None:
        expected = f"Bearer {cfg.api_key}".encode()
        given = (authorization or "").encode("utf-8", "surrogateescape")
        if not cfg.api_key or not hmac.compare_digest(given, expected):
            raise HTTPException(401, {"code": "UNAUTHORIZED", "message": "bad API key"})

    app = api_app("Durable Journeys sandbox provider", docs=cfg.docs)
    key_required = [Depends(authorized)]
    app.state.sandbox = state
    app.state.config = cfg

    @app.post("/v1/messages", status_code=202, dependencies=key_required)
    async def send(body: SendBody, idempotency_key: str | None = Header(default=None, max_length=300)) -> JSONResponse:
        return await sandbox.send(body, idempotency_key)

    @app.get("/v1/messages", dependencies=key_required)
    async def list_messages(to: str | None = None, reference: str | None = None) -> dict[str, Any]:
        items = [
            m
            for m in state.messages.values()
            if (to is None or m["to"] == to) and (reference is None or m["reference"] == reference)
        ]
        return {"messages": items}

    @app.get("/v1/messages/by-reference/{reference:path}", dependencies=key_required)
    async def by_reference(reference: str) -> JSONResponse:
        message_id = state.by_reference.get(reference)
        if message_id is None:
            return JSONResponse({"error": {"code": "NOT_FOUND", "message": "no such reference"}}, 404)
        return JSONResponse(state.messages[message_id])

    @app.get("/v1/messages/{message_id}", dependencies=key_required)
    async def get_message(message_id: str) -> JSONResponse:
        if message_id not in state.messages:
            return JSONResponse({"error": {"code": "NOT_FOUND", "message": "no such message"}}, 404)
        return JSONResponse(state.messages[message_id])

    @app.post("/v1/control/outage", dependencies=key_required)
    async def outage(body: OutageBody) -> dict[str, Any]:
        """Answer every send with 503 for ``seconds`` (0 ends an outage)."""
        state.outage_until = time.monotonic() + body.seconds
        return {"outage_seconds": body.seconds}

    @app.post("/v1/control/latency", dependencies=key_required)
    async def latency(body: OutageBody) -> dict[str, Any]:
        """Take ``seconds`` before answering every send."""
        cfg.send_latency_seconds = body.seconds
        return {"latency_seconds": body.seconds}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, dict) else {"code": "ERROR", "message": str(exc.detail)}
        return JSONResponse({"error": detail}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[:4])
        return JSONResponse({"error": {"code": "BAD_REQUEST", "message": f"{where}: {first.get('msg')}"[:200]}}, 422)

    @app.exception_handler(json.JSONDecodeError)
    async def bad_json(_: Request, exc: json.JSONDecodeError) -> JSONResponse:
        return JSONResponse({"error": {"code": "BAD_REQUEST", "message": str(exc)}}, 400)

    return app
