"""Per-customer inbox tokens: what an app holds to read one customer's in-app inbox.

The app's backend mints a token with :meth:`starter.Journeys.inbox_token` (or
:func:`mint_inbox_token`) and hands it to the app; the app sends it as
``Authorization: Bearer <token>`` to ``/inbox/{customer_id}``. A token opens one customer's inbox
until it expires, and nothing else: the server-to-server API key does not open inboxes at all.

Format: ``v1.<base64url payload>.<base64url HMAC-SHA256>``, the payload being
``{"sub": customer_id, "exp": unix_seconds}``. HMAC (not a JWT library) keeps the check to one
constant-time comparison and rules out algorithm confusion.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

from durable_journeys.providers import ConfigError

MAX_TOKEN_LENGTH = 512
MAX_TTL = timedelta(days=30)
_PREFIX = "v1"


class TokenError(Exception):
    """The token is missing, malformed, forged or expired (answered 401)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), f"{_PREFIX}.{payload}".encode(), hashlib.sha256).digest())


def mint_inbox_token(secret: str, customer_id: str, ttl: timedelta, *, now: float | None = None) -> str:
    """A token that opens ``customer_id``'s inbox for ``ttl``.

    Raises:
        ConfigError: no secret is configured, or ``ttl`` is not within (0, 30 days].
    """
    if not secret:
        raise ConfigError("JOURNEYS_INBOX_TOKEN_SECRET is not set: inbox tokens cannot be minted")
    if not timedelta(0) < ttl <= MAX_TTL:
        raise ConfigError(f"inbox token ttl must be more than 0 and at most {MAX_TTL.days} days")
    issued = time.time() if now is None else now
    payload = _b64(
        json.dumps({"sub": customer_id, "exp": int(issued + ttl.total_seconds())}, separators=(",", ":")).encode()
    )
    return f"{_PREFIX}.{payload}.{_mac(secret, payload)}"


def inbox_token_subject(secret: str, token: str, *, now: float | None = None) -> str:
    """The customer id a valid token was minted for.

    Raises:
        TokenError: no secret configured (nothing verifies), or the token is malformed, forged or expired.
    """
    if not secret:
        raise TokenError("no inbox token secret is configured")
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise TokenError("malformed token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX:
        raise TokenError("malformed token")
    _, payload, signature = parts
    if not hmac.compare_digest(_mac(secret, payload).encode(), signature.encode()):
        raise TokenError("invalid token")
    try:
        claims = json.loads(_unb64(payload))
        subject, expires = claims["sub"], claims["exp"]
    except (ValueError, KeyError, TypeError):
        raise TokenError("malformed token") from None
    if not isinstance(subject, str) or not isinstance(expires, int):
        raise TokenError("malformed token")
    if (time.time() if now is None else now) >= expires:
        raise TokenError("token expired")
    return subject
