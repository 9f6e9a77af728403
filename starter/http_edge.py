"""What every request to the webhook app goes through: body limits and deadline, rate limits, bearer tokens, metrics."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import HTTPException, Request

from durable_journeys.activities.metrics import WEBHOOK_REQUESTS
from durable_journeys.providers import (
    json_depth,
)

log = structlog.get_logger("starter.webhooks")

BODY_TIMEOUT_SECONDS = 10.0


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


def caller_of(request: Request) -> str:
    """Who is calling, as the server sees it (the peer address; behind a proxy, the proxy's)."""
    return request.client.host if request.client else "-"


def digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def parse_json(body: bytes, *, max_depth: int) -> Any:
    """Parse a JSON body, refusing what is not JSON or nests deeper than ``max_depth`` (400)."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # also: integers of more than 4,300 digits
        raise HTTPException(400, "body is not valid JSON") from None
    if json_depth(value, max_depth) > max_depth:
        raise HTTPException(400, f"body nests deeper than {max_depth} levels")
    return value


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
