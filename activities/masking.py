"""Masking personal data in text: phone numbers, e-mail addresses, push tokens, URL passwords.

Pure (``re``, ``unicodedata``): the logs use it on every line, the facade on operators' input,
and journeys (inside the workflow sandbox) on what an operator types into an Update.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

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
