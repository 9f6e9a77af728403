"""E-mail over SMTP with ``aiosmtplib``: text and HTML parts, Korea's ad marking, RFC 8058 one-click unsubscribe.

An advertising e-mail carries ``(광고)`` at the head of its subject (Korea's Information and
Communications Network Act, art. 50) and ``List-Unsubscribe`` / ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click`` (RFC 8058), which large mailbox providers require of bulk senders.
The ``Message-ID`` is derived from our idempotency key, so a resend after an unknown outcome is
recognisably the same message. SMTP has no delivery receipts and no lookup: an accepted message
counts as delivered (bounces arriving later are not read here).

Nothing here knows Temporal.
"""

from __future__ import annotations

import hashlib
import html
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import quote

import aiosmtplib

from durable_journeys.providers.base import (
    Channel,
    ErrorClass,
    OutboundMessage,
    Purpose,
    ReceiptMode,
    SendResult,
    SendStatus,
)
from durable_journeys.providers.common import NoReceipts, rejected, unknown

AD_PREFIX = "(광고)"
OPT_OUT_TEXT = "수신을 원하지 않으시면 수신거부"


@dataclass(frozen=True)
class SmtpConfig:
    """Where and as whom mail is sent.

    Args:
        host: the SMTP server (a relay such as SES, SendGrid or your MTA).
        port: 587 (STARTTLS), 465 (implicit TLS) or 25.
        sender: the From address, e.g. ``"듀러블샵 <shop@example.com>"``.
        username: SMTP AUTH user (empty: no AUTH).
        password: SMTP AUTH password.
        security: ``starttls``, ``tls`` (implicit, port 465) or ``none`` (a local relay only).
        unsubscribe_url: the one-click unsubscribe endpoint; ``{ref}`` is replaced by the
            message's reference. Required for advertising mail.
        unsubscribe_mailto: an optional ``mailto:`` unsubscribe address.
        timeout: seconds for each SMTP exchange.
        tls_context: the TLS context (default: the system's trusted CAs).
    """

    host: str
    port: int = 587
    sender: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    security: str = "starttls"
    unsubscribe_url: str = ""
    unsubscribe_mailto: str = ""
    timeout: float = 30.0
    tls_context: ssl.SSLContext | None = field(default=None, repr=False)


class SmtpProvider(NoReceipts):
    """Sends e-mail through an SMTP server."""

    def __init__(self, config: SmtpConfig, *, name: str = "smtp") -> None:
        """Send with ``config`` under the provider name ``name``."""
        self.name = name
        self.channels = frozenset({Channel.EMAIL})
        self._config = config

    def message(self, msg: OutboundMessage) -> EmailMessage:
        """The MIME message for ``msg`` (text and HTML alternatives)."""
        c = self._config
        mail = EmailMessage()
        subject = msg.subject or ""
        if msg.purpose is Purpose.ADVERTISING and not subject.startswith(AD_PREFIX):
            subject = f"{AD_PREFIX} {subject}".strip()
        mail["Subject"] = subject
        mail["From"] = c.sender
        mail["To"] = msg.to
        mail["Date"] = formatdate(localtime=False)
        domain = c.sender.rsplit("@", 1)[-1].strip(" >") or "localhost"
        mail["Message-ID"] = f"<{hashlib.sha256(msg.idempotency_key.encode()).hexdigest()[:32]}@{domain}>"
        text, footer = msg.body, ""
        if msg.purpose is Purpose.ADVERTISING:
            link = c.unsubscribe_url.replace("{ref}", quote(msg.idempotency_key, safe=""))
            targets = [f"<{link}>"]
            if c.unsubscribe_mailto:
                targets.append(f"<{c.unsubscribe_mailto}>")
            mail["List-Unsubscribe"] = ", ".join(targets)
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            # The law wants the way to opt out in the ad itself, not only in headers.
            text = f"{msg.body}\n\n{OPT_OUT_TEXT}: {link}"
            footer = f'<p><a href="{html.escape(link, quote=True)}">{OPT_OUT_TEXT}</a></p>'
        mail.set_content(text)
        # The template's own HTML (rendered autoescaped), or the text as paragraphs.
        content = msg.html or "".join(
            f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in msg.body.split("\n\n")
        )
        mail.add_alternative(f'<!doctype html><html lang="ko"><body>{content}{footer}</body></html>', subtype="html")
        return mail

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Send one e-mail; the server's answer decides the outcome."""
        c = self._config
        if msg.channel is not Channel.EMAIL:
            return rejected(ErrorClass.CONFIG, "NOT_EMAIL", f"smtp cannot send {msg.channel.value}")
        if not c.sender:
            return rejected(ErrorClass.CONFIG, "NOT_CONFIGURED", "JOURNEYS_SMTP_SENDER is not set")
        if msg.purpose is Purpose.ADVERTISING and not c.unsubscribe_url:
            return rejected(ErrorClass.CONFIG, "NOT_CONFIGURED", "JOURNEYS_SMTP_UNSUBSCRIBE_URL is not set")
        try:
            mail = self.message(msg)
        except (ValueError, TypeError) as exc:  # e.g. a line break in a header value: never sendable
            return rejected(ErrorClass.REQUEST, "INVALID_MESSAGE", type(exc).__name__)
        try:
            await aiosmtplib.send(
                mail,
                hostname=c.host,
                port=c.port,
                username=c.username or None,
                password=c.password or None,
                use_tls=c.security == "tls",
                start_tls=True if c.security == "starttls" else False,
                tls_context=c.tls_context,
                timeout=c.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            code = exc.recipients[0].code if exc.recipients else 550
            return _by_reply(code, "RECIPIENT_REFUSED", dead=True)
        except aiosmtplib.SMTPAuthenticationError as exc:
            return rejected(ErrorClass.CONFIG, f"SMTP_{exc.code}", "authentication refused")
        except aiosmtplib.SMTPSenderRefused as exc:
            return _by_reply(exc.code, "SENDER_REFUSED", config=True)
        except aiosmtplib.SMTPDataError as exc:
            return _by_reply(exc.code, "DATA_REFUSED")
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError) as exc:
            return rejected(ErrorClass.RETRY, type(exc).__name__, "could not connect")
        except aiosmtplib.SMTPResponseException as exc:  # e.g. HELO or STARTTLS refused
            return _by_reply(exc.code, "SMTP_REFUSED", config=True)
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Disconnected or timed out after the conversation began: the message may be queued.
            return unknown(type(exc).__name__)
        return SendResult(status=SendStatus.ACCEPTED, provider_message_id=mail["Message-ID"], receipt=ReceiptMode.NONE)


def _by_reply(code: int, name: str, *, dead: bool = False, config: bool = False) -> SendResult:
    """A refusal by its SMTP reply code: 4xx is transient (try later), 5xx permanent."""
    if 400 <= code < 500:
        return rejected(ErrorClass.RETRY, f"SMTP_{code}", f"{name.lower()} (transient)")
    if config:
        return rejected(ErrorClass.CONFIG, f"SMTP_{code}", name.lower())
    return rejected(ErrorClass.RECIPIENT_DEAD if dead else ErrorClass.REQUEST, f"SMTP_{code}", name.lower())
