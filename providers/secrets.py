"""What makes a value usable as a secret (API keys, webhook secrets, token keys): checked before anything starts."""

from __future__ import annotations

# A secret shorter than this (in UTF-8 bytes) can be guessed or was typed by hand.
MIN_SECRET_BYTES = 32
MIN_SECRET_DISTINCT = 10  # "a" * 40 or "0123" * 10 is long, not random
# Values that have been public defaults or that people type when asked for a secret.
KNOWN_DEV_SECRETS = frozenset(
    {
        "sandbox-key",
        "sandbox-webhook-secret",
        "dev-api-key",
        "dev-inbox-secret",
        "changeme",
        "change-me",
        "secret",
        "password",
        "test",
        "dev",
        "development",
        "example",
    }
)


def secret_problem(value: str) -> str | None:
    """Why ``value`` cannot serve as a secret, or None if it can."""
    if not value.strip():
        return "is not set"
    if value.strip().lower() in KNOWN_DEV_SECRETS:
        return "is a known development value"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    if len(set(value)) < MIN_SECRET_DISTINCT:
        return "is not random (too few distinct characters)"
    return None
