"""structlog configuration and the PII redactor every log line passes through."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from durable_journeys.activities.masking import mask

# Fields that hold contact data or message content, whatever their value looks like.
_SECRET_KEYS = frozenset(
    {
        "to",
        "phone",
        "email",
        "token",
        "push_token",
        "push_tokens",
        "authorization",
        "name",
        "customer_name",
        "body",
        "subject",
        "variables",
        "recipient",
        "password",
        "secret",
        "api_key",
    }
)
_MAX_DEPTH = 6


def _redact(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return mask(value)
    if depth >= _MAX_DEPTH:
        return "<nested>"
    if isinstance(value, dict):
        return {k: "<redacted>" if str(k).lower() in _SECRET_KEYS else _redact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_redact(v, depth + 1) for v in value]
    if isinstance(value, BaseException):
        return mask(f"{type(value).__name__}: {value}")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return mask(str(value))


def redact_pii(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Mask contact data anywhere in a log line: nested values, rendered exceptions, any field.

    Fields named for contact data (``to``, ``phone``, ``email``, ``name`` ...) are dropped
    whatever they hold; every other string is searched for phone numbers, e-mail addresses
    and push tokens. Runs after ``format_exc_info``, so tracebacks are masked too.
    """
    for key in list(event_dict):
        if key.startswith("_"):  # structlog's own bookkeeping (the stdlib record)
            continue
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "<redacted>"
        elif key != "exc_info":
            event_dict[key] = _redact(event_dict[key])
    return event_dict


def configure_logging(*, json: bool | None = None, level: str = "INFO") -> None:
    """Configure structlog and stdlib logging once (worker, CLI).

    Args:
        json: JSON lines (production) or the console renderer (dev); by default JSON unless
            stderr is a terminal.
        level: minimum level.
    """
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks become an "exception" string here, so they are redacted like any value and
        # JSON logs keep them (not just "exc_info": true).
        structlog.processors.format_exc_info,
        redact_pii,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        # filter_by_level first: a filtered line costs no processor work (one per send adds up)
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
