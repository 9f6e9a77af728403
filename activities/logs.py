"""structlog configuration and the PII redactor every log line passes through."""

from __future__ import annotations

import logging
import re
import sys
import unicodedata
from typing import Any
from urllib.parse import unquote

import structlog

# Any e-mail form: dotted, plus-addressed, quoted local parts, unicode and upper-case domains.
_EMAIL = re.compile(r"""(?:"[^"\r\n]{1,64}"|[\w.!#$%&'*+/=?^`{|}~\-]+)@[\w\-]+(?:\.[\w\-]+)+""")
# Korean numbers: mobile (010 ...), Seoul and regional landlines (02, 031 ... 064), 070 and 050x,
# with or without +82, spaces, dots, dashes or brackets; and representative numbers (1588-1234).
_PHONE = re.compile(
    r"(?<!\d)(?:(?:\+?82[\s.\-]?\(?0?\)?|\(?0)(?:1[016789]|2|[3-6][1-5]|70|50[2-8])\)?[\s.\-]?\d{3,4}[\s.\-]?\d{4}"
    r"|1[5-9]\d{2}[\s.\-]?\d{4})(?!\d)"
)
# Push tokens (FCM registration tokens, APNs hex tokens, web push endpoints): long opaque strings.
_TOKEN = re.compile(
    r"https://[\w.\-]*(?:push|fcm|notify)[\w.\-]*/\S+|[\w\-]{20,}:[\w\-]{40,}|\b[0-9a-fA-F]{64}\b|[\w\-]{100,}"
)
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


# user:password@ in any URL (a database URL in a connection error, say).
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.\-]*://[^:/@\s]*:)[^@\s]+@")


def _plain(value: str) -> str:
    """``value`` as the patterns read it: percent-decoded, compatibility forms folded, any digit as ASCII."""
    if "%" in value:
        value = unquote(value)
    value = unicodedata.normalize("NFKC", value)
    if not value.isascii():
        value = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in value)
    return value


def _mask_plain(value: str) -> str:
    value = _URL_PASSWORD.sub(r"\1<password>@", value)
    return _PHONE.sub("<phone>", _TOKEN.sub("<token>", _EMAIL.sub("<email>", value)))


def mask(value: str) -> str:
    """``value`` with every phone number, e-mail address, push token and URL password replaced.

    Full-width or other non-ASCII digits (``０１０-１２３４-５６７８``) and percent-encoded text
    (``kim%40mail.com`` in a URL) are found too; such a value is returned in its decoded form,
    masked. A value with nothing to mask is returned unchanged.
    """
    masked = _mask_plain(value)
    if masked != value:
        return masked
    plain = _plain(value)
    if plain == value:
        return value
    masked = _mask_plain(plain)
    return value if masked == plain else masked


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
