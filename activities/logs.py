"""structlog configuration and the PII redactor every log line passes through."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<!\d)(?:\+?82[\s\-]?|0)1\d[\s\-]?\d{3,4}[\s\-]?\d{4}(?!\d)")
_SECRET_KEYS = frozenset({"to", "phone", "email", "address", "token", "push_token", "authorization"})


def _mask(value: str) -> str:
    return _PHONE.sub("<phone>", _EMAIL.sub("<email>", value))


def redact_pii(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Drop contact fields and mask phone numbers and emails anywhere in a log line."""
    for key in list(event_dict):
        value = event_dict[key]
        if key in _SECRET_KEYS:
            event_dict[key] = "<redacted>"
        elif isinstance(value, str):
            event_dict[key] = _mask(value)
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
