"""Bizgo (Infobank): Kakao AlimTalk, Brand Message, RCS and SMS/LMS through the official SDK.

The SDK (``bizgo-sdk-comm``, import ``bizgo``) validates each message before it is sent (byte
limits, EUC-KR range, conditional fields), retries 429/5xx/network errors when an idempotency key
is given, rate-limits per process and verifies report webhooks. This module only maps our
contract onto it:

* one :meth:`AsyncBizgo.send.omni` call per message, with our idempotency key as
  ``idempotency_key`` and ``ref`` (Bizgo keeps the key 24 hours: a repeat is answered ``A301``
  and not sent again) and ``journey.step`` as ``groupKey`` (Bizgo's insights group by it);
* the per-recipient result and the SDK's exceptions mapped to :class:`ErrorClass`
  (:data:`ERROR_CLASSES`, from the SDK's error-code list);
* reports (webhook or polling) mapped to :class:`DeliveryReceipt`, routed by ``ref`` (our key)
  and ``msgKey`` (the provider message id).

Nothing here knows Temporal.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import bizgo
import httpx
from bizgo import (
    AlimtalkMessage,
    AsyncBizgo,
    BrandMessage,
    Destination,
    MmsMessage,
    RcsMessage,
    SmsMessage,
)
from bizgo.models import RcsBody, Report
from bizgo.webhooks import DEFAULT_TOLERANCE_SECONDS, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookReceiver
from pydantic import ValidationError

from durable_journeys.providers.base import (
    EDGE,
    Channel,
    DeliveryReceipt,
    ErrorClass,
    InvalidReceipt,
    OutboundMessage,
    ReceiptMode,
    ReceiptStatus,
    SendResult,
    SendStatus,
    SmsKind,
)
from durable_journeys.providers.common import rejected
from durable_journeys.providers.errors import ProviderUnavailable, SignatureError, WebhookError

CHANNELS = frozenset({Channel.ALIMTALK, Channel.BRAND_MESSAGE, Channel.RCS, Channel.SMS})
DELIVERED = "10000"  # a report's code when the message reached the phone
MAX_KEY = 200  # Bizgo's idempotencyKey limit
# Bizgo wants a report webhook answered within 5 seconds (else it posts again, up to 3 times):
# what takes longer than this goes on after the answer.
ACK_WITHIN_SECONDS = 3.0
_KST = timezone(timedelta(hours=9))  # Bizgo's history and report times are KST

# Bizgo's codes (``data.code`` of the service layer and per-recipient ``destinations[].code``;
# ``bizgo._error_codes.SERVICE_CODES`` lists them) -> what the journey does. A code not listed
# falls back to its HTTP status: 401/403 CONFIG, 429 RETRY, 5xx UNKNOWN, else REQUEST.
ERROR_CLASSES: dict[str, ErrorClass] = {
    # authentication and the account: nothing will go out until an operator acts
    "A001": ErrorClass.CONFIG,  # expired token
    "A002": ErrorClass.CONFIG,  # token has no permission
    "A100": ErrorClass.CONFIG,  # wrong credentials
    "A110": ErrorClass.CONFIG,  # account blocked
    "A111": ErrorClass.CONFIG,  # account blocked
    "A113": ErrorClass.CONFIG,  # invalid expired-set value
    "A320": ErrorClass.CONFIG,  # the account's message allowance is used up
    "A325": ErrorClass.CONFIG,  # no permission for this channel
    "A326": ErrorClass.CONFIG,  # no permission for MT fallback
    "A327": ErrorClass.CONFIG,  # caller number not registered
    "A323": ErrorClass.CONFIG,  # spam block on our caller number
    # our request is malformed: a bug or a bad setting, not this recipient
    "A010": ErrorClass.CONFIG,  # JSON not parseable
    "A011": ErrorClass.CONFIG,  # JSON not mappable
    "A302": ErrorClass.CONFIG,  # from
    "A308": ErrorClass.CONFIG,  # idempotencyKey
    "A309": ErrorClass.CONFIG,  # idempotencyTtl
    "A318": ErrorClass.CONFIG,  # more than 200 recipients
    "A404": ErrorClass.CONFIG,  # RCS formatId
    "A418": ErrorClass.CONFIG,  # RCS agencyKey
    "A419": ErrorClass.CONFIG,  # RCS brandId
    "A420": ErrorClass.CONFIG,  # RCS brandKey
    "A502": ErrorClass.CONFIG,  # Kakao senderKey
    "A505": ErrorClass.CONFIG,  # Kakao templateCode
    "A523": ErrorClass.CONFIG,  # AlimTalk msgType
    "A571": ErrorClass.CONFIG,  # Brand Message sendType
    # this recipient or this message cannot go out on this channel: the next channel may
    "A303": ErrorClass.REQUEST,  # text invalid or empty
    "A328": ErrorClass.REQUEST,  # text too long
    "A300": ErrorClass.REQUEST,  # invalid send request
    "A306": ErrorClass.REQUEST,  # recipient number invalid
    "A307": ErrorClass.REQUEST,  # no recipient
    "A322": ErrorClass.REQUEST,  # spam block on the content
    "A330": ErrorClass.REQUEST,  # an ad at night (20:00-08:00 KST)
    "A324": ErrorClass.FALLBACK,  # spam block on the recipient's number
    # Bizgo could not take it now
    "A020": ErrorClass.RETRY,  # rate limit
    "A920": ErrorClass.RETRY,  # temporarily unavailable: not processed
    "A910": ErrorClass.UNKNOWN,  # internal error: may have been taken
    "A999": ErrorClass.UNKNOWN,  # unknown error: may have been taken
}
# Gateway-layer codes (``common.authCode``) mean something else than the same service code.
GATEWAY_CLASSES: dict[str, ErrorClass] = {
    "A400": ErrorClass.CONFIG,  # request format
    "A401": ErrorClass.CONFIG,  # API key wrong or the calling IP not registered
    "A403": ErrorClass.CONFIG,  # not allowed
    "A404": ErrorClass.CONFIG,  # no such API
}
_GROUP = re.compile(r"[^A-Za-z0-9._-]")
_NOT_CONNECTED = tuple(f"({cls.__name__})" for cls in (httpx.ConnectError, httpx.ConnectTimeout))


def error_class(code: str | None, http_status: int | None, *, gateway: bool = False) -> ErrorClass:
    """What the journey does about Bizgo's ``code`` (see :data:`ERROR_CLASSES`)."""
    known = (GATEWAY_CLASSES if gateway else ERROR_CLASSES).get(code or "")
    if known is not None:
        return known
    status = http_status or 400
    if status in (401, 403):
        return ErrorClass.CONFIG
    if status == 429:
        return ErrorClass.RETRY
    if status >= 500:
        return ErrorClass.UNKNOWN
    return ErrorClass.REQUEST


def bizgo_key(idempotency_key: str) -> str:
    """Our key as Bizgo takes it (at most 200 characters: a longer one is hashed)."""
    if len(idempotency_key) <= MAX_KEY:
        return idempotency_key
    return "sha256:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


def group_key(idempotency_key: str) -> str:
    """``journey.step`` of a message's key (``{workflow_id}[@episode]:{step}:{channel}``).

    Bizgo's insights group statistics by it, and :meth:`BizgoProvider.lookup` narrows its search to it.
    """
    parts = idempotency_key.rsplit(":", 2)
    journey = parts[0].split(":", 1)[0].split("@", 1)[0]
    step = parts[1] if len(parts) == 3 else "send"
    return _GROUP.sub("_", f"{journey}.{step}")[:100]


@dataclass(frozen=True)
class BizgoConfig:
    """The account's senders and how delivery reports arrive.

    Args:
        sender_key: the Kakao channel's sender profile key (AlimTalk, Brand Message).
        brand_targeting: whom a Brand Message may reach (Kakao's targeting: ``I`` the channel's friends).
        caller_number: the registered caller number for SMS/LMS and RCS (digits).
        rcs_brand_key: the RCS brand key.
        rcs_format_id: the RCS message format (e.g. a standalone LMS format).
        receipts: ``webhook`` (Bizgo posts reports to ``/webhooks/bizgo``) or ``poll``
            (the worker consumes them); as the key's report setting in Bizgo's console says.
        lookup_window: how far back :meth:`BizgoProvider.lookup` searches the send history.
        lookup_max_messages: at most this many history entries per lookup.
    """

    sender_key: str = ""
    caller_number: str = ""
    rcs_brand_key: str = ""
    rcs_format_id: str = ""
    brand_targeting: str = "I"  # Brand Message audience: I = the channel's friends (Kakao's M, N, O, I)
    alimtalk_send_type: str = "text"  # "text": our rendered text; "template": Kakao fills its template
    receipts: ReceiptMode = ReceiptMode.WEBHOOK
    lookup_window: timedelta = timedelta(hours=24)
    lookup_max_messages: int = 2000


class BizgoProvider:
    """Sends through Bizgo with the official async SDK.

    Args:
        client: an ``AsyncBizgo`` (``bizgo.testing.FakeTransport().async_client()`` in tests).
        config: senders and report settings.
        webhook_secret: the secret Bizgo signs report webhooks with (empty: webhooks refused).
        name: the provider name in webhook paths and the message log.
    """

    def __init__(
        self, client: AsyncBizgo, config: BizgoConfig, *, webhook_secret: str = "", name: str = "bizgo"
    ) -> None:
        self.name = name
        self.channels = CHANNELS
        self.gateway_channels = CHANNELS  # send.omni falls back through its messages itself
        self.ack_within = ACK_WITHIN_SECONDS
        self._client = client
        self._config = config
        self._receiver = WebhookReceiver(webhook_secret) if webhook_secret.strip() else None
        self.replay_window = DEFAULT_TOLERANCE_SECONDS

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        await self._client.close()

    # sending ---------------------------------------------------------------------------------

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Send one message; Bizgo answers a repeat of the key with ``A301`` and sends nothing."""
        # Gateway fallback: the chain's messages in order, one request; Bizgo sends the next when
        # one fails and reports the channel that delivered.
        chain = [msg, *(msg.model_copy(update={**f.model_dump(), "fallback": []}) for f in msg.fallback)]
        for each in chain:
            missing = self._missing_setting(each.channel, each)
            if missing:
                return rejected(ErrorClass.CONFIG, "NOT_CONFIGURED", f"{missing} is not set")
        key = bizgo_key(msg.idempotency_key)
        try:
            messages = [self._channel_message(each) for each in chain]
            result = await self._client.send.omni(
                to=[self._destination(msg)],
                messages=messages,
                idempotency_key=key,
                ref=key,
                group_key=group_key(msg.idempotency_key),
            )
        except ValidationError as exc:  # the SDK checks before sending: nothing went out
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"][:3]) or "message"
            return rejected(ErrorClass.REQUEST, "INVALID_MESSAGE", f"{where}: {first['msg']}"[:200])
        except bizgo.BizgoError as exc:
            return self._error(exc)
        return self._accepted(result)

    def _missing_setting(self, channel: Channel, msg: OutboundMessage) -> str | None:
        c = self._config
        if channel in (Channel.ALIMTALK, Channel.BRAND_MESSAGE) and not c.sender_key:
            return "JOURNEYS_BIZGO_SENDER_KEY"
        if channel is Channel.ALIMTALK and not msg.template_code:
            return "the template's AlimTalk template code (provider_template_codes)"
        if channel in (Channel.SMS, Channel.RCS) and not c.caller_number:
            return "JOURNEYS_BIZGO_CALLER_NUMBER"
        if channel is Channel.RCS and not (c.rcs_brand_key and (c.rcs_format_id or msg.template_code)):
            return "JOURNEYS_BIZGO_RCS_BRAND_KEY and JOURNEYS_BIZGO_RCS_FORMAT_ID"
        if channel not in CHANNELS:
            return f"a Bizgo route for {channel.value}"
        return None

    def _destination(self, msg: OutboundMessage) -> Destination:
        # A registered-template send (Brand Message, or AlimTalk in "template" mode) fills the
        # template's #{variables} at Bizgo: our variables use the same names and syntax.
        by_template = msg.template_code and (
            msg.channel is Channel.BRAND_MESSAGE
            or (msg.channel is Channel.ALIMTALK and self._config.alimtalk_send_type == "template")
        )
        words = dict(msg.variables) if by_template else None
        return Destination(to=_digits(msg.to), **({"replace_words": words} if words else {}))

    def _channel_message(self, msg: OutboundMessage) -> Any:
        """The SDK's message model for ``msg`` (validated by the SDK as it is built)."""
        c = self._config
        match msg.channel:
            case Channel.ALIMTALK if c.alimtalk_send_type == "template":
                # Kakao fills its approved template with the destination's replace_words.
                return AlimtalkMessage(
                    sender_key=c.sender_key, template_code=msg.template_code or "", send_type="template"
                )
            case Channel.ALIMTALK:
                # Full-text send of an approved template: the text must be the template with its
                # variables filled in, which is what our registry renders.
                return AlimtalkMessage(
                    sender_key=c.sender_key,
                    template_code=msg.template_code or "",
                    msg_type="AT",
                    text=msg.body,
                    **({"title": msg.subject} if msg.subject else {}),
                )
            case Channel.BRAND_MESSAGE:
                if msg.template_code:
                    return BrandMessage(
                        sender_key=c.sender_key,
                        send_type="template",
                        template_code=msg.template_code,
                        targeting=c.brand_targeting,
                    )
                return BrandMessage(sender_key=c.sender_key, send_type="free", msg_type="FT", text=msg.body)
            case Channel.RCS:
                return RcsMessage(
                    from_=c.caller_number,
                    format_id=msg.template_code or c.rcs_format_id,  # the template's own format first
                    brand_key=c.rcs_brand_key,
                    body=RcsBody(title=msg.subject, description=msg.body),
                )
            case _:  # SMS or LMS, chosen by the body's cp949 length before we got here; MMS with images
                if msg.image_keys:
                    return MmsMessage(
                        from_=c.caller_number,
                        text=msg.body,
                        file_key=list(msg.image_keys),
                        **({"title": msg.subject} if msg.subject else {}),
                    )
                if msg.sms_kind is SmsKind.LMS:
                    return MmsMessage(
                        from_=c.caller_number, text=msg.body, **({"title": msg.subject} if msg.subject else {})
                    )
                return SmsMessage(from_=c.caller_number, text=msg.body)

    def _accepted(self, result: bizgo.SendResult) -> SendResult:
        mode = self._config.receipts
        for item in result.succeeded:
            return SendResult(status=SendStatus.ACCEPTED, provider_message_id=item.msg_key, receipt=mode)
        for item in result.duplicates:  # accepted earlier under this key: reconciled, not resent
            return SendResult(status=SendStatus.ACCEPTED, provider_message_id=item.msg_key, receipt=mode)
        for item in result.failed:
            code = item.code or "UNKNOWN_CODE"
            cls = error_class(code, None)
            if cls is ErrorClass.UNKNOWN:
                return SendResult(status=SendStatus.UNKNOWN, error_class=cls, error_code=code)
            return rejected(cls, code, item.result)
        return SendResult(status=SendStatus.UNKNOWN, error_class=ErrorClass.UNKNOWN, error_code="NO_RESULT")

    def _error(self, exc: bizgo.BizgoError) -> SendResult:
        """An SDK exception as a result; only a lookup can tell whether an unknown one went out."""
        if isinstance(exc, bizgo.DuplicateRequestError):
            # The whole request was accepted before under this key: not sent again. Its report
            # still routes by ``ref``; its msgKey comes with it.
            return SendResult(status=SendStatus.ACCEPTED, receipt=self._config.receipts)
        if isinstance(exc, bizgo.RateLimitError):
            after = timedelta(seconds=exc.retry_after) if exc.retry_after else None
            return rejected(ErrorClass.RETRY, exc.code or "A020", "rate limited", after=after)
        if isinstance(exc, bizgo.APIError):
            cls = error_class(exc.code, exc.http_status, gateway=exc.layer == "gateway")
            code = exc.code or f"HTTP_{exc.http_status}"
            if cls is ErrorClass.UNKNOWN:
                return SendResult(status=SendStatus.UNKNOWN, error_class=cls, error_code=code)
            return rejected(cls, code, exc.description or exc.message)
        if isinstance(exc, bizgo.APIConnectionError):
            # The SDK names httpx's exception in its message (it drops the cause): a connection
            # refused or never opened wrote nothing, so it is known not sent. Anything else may
            # have reached Bizgo.
            if str(exc).rstrip().endswith(_NOT_CONNECTED):
                return rejected(ErrorClass.RETRY, "CONNECT_FAILED", "could not connect")
            return SendResult(status=SendStatus.UNKNOWN, error_class=ErrorClass.UNKNOWN, error_code=type(exc).__name__)
        if isinstance(exc, bizgo.InvalidResponseError):
            return SendResult(status=SendStatus.UNKNOWN, error_class=ErrorClass.UNKNOWN, error_code="INVALID_RESPONSE")
        # ConfigurationError (a key with a newline, an insecure URL ...) and anything else of ours
        return rejected(ErrorClass.CONFIG, type(exc).__name__, "the Bizgo client is misconfigured")

    # reconciling -----------------------------------------------------------------------------

    async def lookup(self, idempotency_key: str) -> SendResult | None:
        """Find an earlier send by key in Bizgo's send history (its ``ref``), within the window.

        None when it is not there: a new send under the same key is then safe, since Bizgo
        answers a key it has taken (for 24 hours) with ``A301`` and sends nothing.

        Raises:
            ProviderUnavailable: Bizgo's history cannot be read now.
        """
        key = bizgo_key(idempotency_key)
        since = (datetime.now(UTC) - self._config.lookup_window).astimezone(_KST)
        seen = 0
        try:
            async for status in self._client.messages.iter_history(since, group_key=group_key(idempotency_key)):
                seen += 1
                if status.ref == key:
                    return SendResult(
                        status=SendStatus.ACCEPTED, provider_message_id=status.msg_key, receipt=self._config.receipts
                    )
                if seen >= self._config.lookup_max_messages:
                    break
        except bizgo.BizgoError as exc:
            raise ProviderUnavailable(f"bizgo history lookup failed: {type(exc).__name__}") from None
        return None

    # reports ---------------------------------------------------------------------------------

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> list[DeliveryReceipt | InvalidReceipt]:
        """Verify a report webhook with the SDK's receiver and parse its one report.

        Raises:
            SignatureError: forged, missing or stale signature (or no secret configured).
            WebhookError: the body is not a report.
        """
        if self._receiver is None:
            raise SignatureError("no webhook secret is configured for bizgo")
        try:
            report = self._receiver.report(headers, body)
        except bizgo.WebhookPayloadError:  # a subclass of the verification error: test it first
            raise WebhookError("bizgo report is not readable") from None
        except bizgo.WebhookVerificationError:
            raise SignatureError("bizgo signature or timestamp refused") from None
        return [self.receipt(report.model_dump(by_alias=True), index=0)]

    def signature_id(self, headers: dict[str, str]) -> str | None:
        """The signed request's timestamp and signature: Bizgo signs only the timestamp, so these name it."""
        lowered = {k.lower(): v for k, v in headers.items()}
        timestamp, signature = lowered.get(TIMESTAMP_HEADER.lower()), lowered.get(SIGNATURE_HEADER.lower())
        if not timestamp or not signature:
            return None
        return f"{timestamp.strip()}:{signature.strip().lower()}"

    async def confirm_receipt(self, receipt: DeliveryReceipt) -> DeliveryReceipt | None:
        """The report as Bizgo's message inquiry tells it (``GET /message/inquiry/msgKey/{msgKey}``).

        Returns the inquiry's report for this message (same msgKey and our key as ``ref``), or
        None when Bizgo has no such message or no final report for it yet.

        Raises:
            ProviderUnavailable: the inquiry failed.
        """
        if not receipt.provider_message_id:
            return None
        try:
            statuses = await self._client.messages.status(receipt.provider_message_id)
        except bizgo.BizgoError as exc:
            raise ProviderUnavailable(f"bizgo message inquiry failed: {type(exc).__name__}") from None
        key = bizgo_key(receipt.idempotency_key) if receipt.idempotency_key else None
        for status in statuses:
            if status.msg_key != receipt.provider_message_id or (key is not None and status.ref != key):
                continue
            if not status.report_code or (
                receipt.channel and _channel(status.service_type) not in (None, receipt.channel)
            ):
                continue
            found = self.receipt(status.model_dump(by_alias=True))
            if isinstance(found, DeliveryReceipt):
                return found
        return None

    def acknowledge(self, receipts: list[DeliveryReceipt | InvalidReceipt]) -> dict[str, Any] | None:
        """The answer Bizgo expects for a report webhook (``{"msgKey": ...}``), or None for ours."""
        for r in receipts:
            if isinstance(r, DeliveryReceipt) and r.provider_message_id:
                return WebhookReceiver.ack(r.provider_message_id)
        return None

    def receipt(self, report: Mapping[str, Any] | Report, *, index: int = 0) -> DeliveryReceipt | InvalidReceipt:
        """A Bizgo report (webhook, polling or inquiry) as our receipt."""
        raw = report.model_dump(by_alias=True) if isinstance(report, Report) else dict(report)
        code = str(raw.get("reportCode") or "")
        ref = raw.get("ref")
        msg_key = raw.get("msgKey")
        if not isinstance(msg_key, str) or not msg_key.strip():
            # A report settles only the message whose logged msgKey it names: without one it
            # could only match by ref, which a forger can guess.
            return InvalidReceipt(index=index, error="msgKey: a report must name its message")
        try:
            return DeliveryReceipt.model_validate(
                {
                    "provider": self.name,
                    "provider_message_id": raw.get("msgKey"),
                    "idempotency_key": ref if isinstance(ref, str) and not ref.startswith("sha256:") else None,
                    "status": ReceiptStatus.DELIVERED if code == DELIVERED else ReceiptStatus.FAILED,
                    "error_code": None if code == DELIVERED else (code or "NO_CODE"),
                    "error_class": None if code == DELIVERED else ErrorClass.FALLBACK,
                    "occurred_at": _time(raw.get("reportTime")),
                    "channel": _channel(raw.get("serviceType")),
                },
                context=EDGE,
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"][:3]) or "report"
            return InvalidReceipt(index=index, error=f"{where}: {first['msg']}"[:200])

    async def poll_receipts(self, handle: Any, *, max_batches: int | None = None) -> int:
        """Consume polled report batches: ``await handle(receipts)`` for each, then acknowledge it.

        A batch whose handler raises is not acknowledged, so Bizgo sends it again.

        Raises:
            ProviderUnavailable: Bizgo cannot be reached.
        """

        async def batch(reports: list[Report]) -> None:
            await handle([self.receipt(r, index=i) for i, r in enumerate(reports)])

        try:
            return await self._client.reports.consume(batch, max_batches=max_batches)
        except bizgo.BizgoError as exc:
            raise ProviderUnavailable(f"bizgo report polling failed: {type(exc).__name__}") from None


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_KST)


_SERVICE_CHANNELS = {
    "SMS": Channel.SMS,
    "MMS": Channel.SMS,
    "LMS": Channel.SMS,
    "RCS": Channel.RCS,
    "ALIMTALK": Channel.ALIMTALK,
    "BRANDMESSAGE": Channel.BRAND_MESSAGE,
    "BRAND_MESSAGE": Channel.BRAND_MESSAGE,
}


def _channel(service_type: object) -> Channel | None:
    return _SERVICE_CHANNELS.get(str(service_type or "").upper().replace("-", ""))
