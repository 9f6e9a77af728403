"""HMAC-SHA256 webhook signatures over ``{timestamp}.{body}``, the scheme of Stripe and Standard Webhooks."""

from __future__ import annotations

import hashlib
import hmac
import time

from durable_journeys.providers.errors import SignatureError

DEFAULT_TOLERANCE_SECONDS = 300
MAX_SIGNATURES = 8  # signatures one header may carry (secret rotation)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``v1=<hex>`` signature of ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a signature; a stale timestamp is refused so a captured request cannot be replayed.

    Raises:
        SignatureError: the signature or timestamp is missing, malformed, stale or wrong.
    """
    if not secret:
        raise SignatureError("no webhook secret is configured: nothing verifies")
    if not timestamp or not signature:
        raise SignatureError("missing signature headers")
    if len(timestamp) > 12 or not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureError("malformed signature timestamp")
    ts = int(timestamp)
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_seconds:
        raise SignatureError("signature timestamp outside the tolerance window")
    expected = sign(secret, ts, body)
    # A header may carry several signatures during secret rotation: "v1=a v1=b".
    # Headers arrive as any bytes: compare bytes, so a non-ASCII header is a mismatch, not an error.
    candidates = signature.encode("utf-8", "surrogateescape").split()[:MAX_SIGNATURES]
    if not any(hmac.compare_digest(expected.encode(), candidate) for candidate in candidates):
        raise SignatureError("signature does not match")
