"""Korean carrier text rules: cp949 byte length decides SMS vs LMS."""

from __future__ import annotations

from durable_journeys.providers.base import SmsKind
from durable_journeys.providers.errors import TemplateError

SMS_MAX_BYTES = 90
LMS_MAX_BYTES = 2000
LMS_SUBJECT_MAX_BYTES = 40


def cp949_length(text: str) -> int:
    """Byte length of ``text`` in cp949, the encoding Korean carriers bill by.

    Raises:
        TemplateError: the text holds a character cp949 cannot encode (emoji, for example).
    """
    try:
        return len(text.encode("cp949"))
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise TemplateError(f"character {bad!r} cannot be sent by SMS/LMS (not in cp949)") from exc


def sms_kind(body: str, subject: str | None = None) -> SmsKind:
    """SMS up to 90 bytes of body, LMS up to 2,000, else an error: the body alone decides.

    A subject never makes an LMS (an LMS costs about three SMS): an SMS goes out without it, and
    it is used when the body needs an LMS. It must fit an LMS subject (40 bytes) either way.
    """
    size = cp949_length(body)
    if subject is not None and cp949_length(subject) > LMS_SUBJECT_MAX_BYTES:
        raise TemplateError(f"LMS subject is over {LMS_SUBJECT_MAX_BYTES} bytes")
    if size <= SMS_MAX_BYTES:
        return SmsKind.SMS
    if size <= LMS_MAX_BYTES:
        return SmsKind.LMS
    raise TemplateError(f"message is {size} bytes, over the LMS limit of {LMS_MAX_BYTES}")
