"""Web push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8291).

``pywebpush`` encrypts the payload for the browser's subscription keys and ``py_vapid`` signs the
VAPID token (the libraries pywebpush is built on); the one POST to the push service goes over our
async ``httpx`` client (pywebpush's own async path needs aiohttp and a session of its own).

A subscription is the browser's ``PushSubscription.toJSON()``: ``{"endpoint", "keys": {"p256dh",
"auth"}}``, stored as one of the customer's push tokens. Its endpoint must be https on a known push
service (FCM, Mozilla, Apple, Windows) unless ``allowed_hosts`` says otherwise: a subscription is
customer-supplied data, and the worker must not POST wherever it points (SSRF). 404 and 410
mark the subscription dead. Push has no delivery receipts.

Nothing here knows Temporal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from py_vapid import Vapid02, VapidException

from durable_journeys.providers.base import (
    Channel,
    ErrorClass,
    OutboundMessage,
    ReceiptMode,
    SendResult,
    SendStatus,
)
from durable_journeys.providers.channels import subscription
from durable_journeys.providers.common import NOT_SENT_ERRORS, NoReceipts, rejected, retry_after, unknown
from durable_journeys.providers.errors import ConfigError

# Host names (a leading dot: any subdomain) of the browsers' push services.
PUSH_SERVICES = (
    "fcm.googleapis.com",
    "android.googleapis.com",
    "updates.push.services.mozilla.com",
    ".push.apple.com",
    ".notify.windows.com",
)
MAX_PAYLOAD = 3000  # push services accept 4096 bytes of ciphertext; leave room for the record overhead


class WebPushProvider(NoReceipts):
    """Sends web push notifications.

    Args:
        client: the HTTP client (its timeout applies).
        vapid_private_key: the application server's VAPID private key (raw P-256 or DER,
            base64url, as ``vapid --gen`` or ``py_vapid`` writes it).
        subject: the ``sub`` claim: ``mailto:`` address or https URL of the sender.
        ttl: how long the push service keeps a message for an offline browser.
        allowed_hosts: push service hosts the worker may POST to (default: :data:`PUSH_SERVICES`).
        name: the provider name in routes and the message log.

    Raises:
        ConfigError: the VAPID key or subject is unusable.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        vapid_private_key: str,
        subject: str,
        ttl: timedelta = timedelta(days=1),
        allowed_hosts: Iterable[str] = PUSH_SERVICES,
        name: str = "webpush",
    ) -> None:
        self.name = name
        self.channels = frozenset({Channel.WEB_PUSH})
        self._client = client
        self._subject = subject
        self._ttl = int(ttl.total_seconds())
        self._hosts = tuple(allowed_hosts)
        if not subject.startswith(("mailto:", "https://")):
            raise ConfigError("JOURNEYS_WEBPUSH_SUBJECT must be a mailto: address or an https URL")
        try:
            self._vapid = Vapid02.from_string(private_key=vapid_private_key)
        except (VapidException, ValueError, TypeError, IndexError):
            raise ConfigError("JOURNEYS_WEBPUSH_VAPID_PRIVATE_KEY is not a VAPID private key") from None

    def _allowed(self, endpoint: str) -> bool:
        try:
            parts = urlsplit(endpoint)
            parts.port  # noqa: B018 - a port that is no number raises here, not in the HTTP client
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        listed = any(host == h or (h.startswith(".") and host.endswith(h)) for h in self._hosts)
        return listed and (parts.scheme == "https" or (parts.scheme == "http" and host in ("127.0.0.1", "localhost")))

    def request(self, msg: OutboundMessage, sub: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The encrypted body and headers for ``msg`` to the subscription ``sub``."""
        payload = json.dumps(
            {"title": msg.subject, "body": msg.body, "reference": msg.idempotency_key}, ensure_ascii=False
        ).encode()
        from pywebpush import WebPusher  # loaded with the first push, not with the address parser

        encoded = WebPusher(sub).encode(payload, "aes128gcm")
        parts = urlsplit(sub["endpoint"])
        claims = {"sub": self._subject, "aud": f"{parts.scheme}://{parts.netloc}", "exp": int(time.time()) + 12 * 3600}
        headers = {
            **self._vapid.sign(claims),
            "content-type": "application/octet-stream",
            "content-encoding": "aes128gcm",
            "ttl": str(self._ttl),
            "urgency": "normal",
        }
        return bytes(encoded["body"]), headers

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Send one notification to the subscription in ``msg.to``."""
        sub = subscription(msg.to)
        if sub is None:
            return rejected(ErrorClass.RECIPIENT_DEAD, "NOT_A_SUBSCRIPTION")
        if not self._allowed(sub["endpoint"]):
            return rejected(ErrorClass.RECIPIENT_DEAD, "ENDPOINT_NOT_ALLOWED", "not a known push service")
        try:
            body, headers = self.request(msg, sub)
        except Exception:  # noqa: BLE001 - keys pywebpush cannot use (empty, not a P-256 point ...) in any way
            return rejected(ErrorClass.RECIPIENT_DEAD, "BAD_SUBSCRIPTION_KEYS")
        if len(body) > MAX_PAYLOAD + 100:
            return rejected(ErrorClass.REQUEST, "PAYLOAD_TOO_LARGE")
        try:
            resp = await self._client.post(sub["endpoint"], content=body, headers=headers)
        except httpx.InvalidURL:
            return rejected(ErrorClass.RECIPIENT_DEAD, "ENDPOINT_NOT_ALLOWED", "not a usable URL")
        except NOT_SENT_ERRORS as exc:
            return rejected(ErrorClass.RETRY, type(exc).__name__)
        except httpx.TransportError as exc:
            return unknown(type(exc).__name__)
        status = resp.status_code
        if status in (200, 201, 202):
            return SendResult(
                status=SendStatus.ACCEPTED, provider_message_id=resp.headers.get("location"), receipt=ReceiptMode.NONE
            )
        code = f"HTTP_{status}"
        if status in (404, 410):
            return rejected(ErrorClass.RECIPIENT_DEAD, code)  # the subscription expired or was withdrawn
        if status in (429, 503):
            return rejected(ErrorClass.RETRY, code, after=retry_after(resp.headers))
        if status >= 500:
            return unknown(code)
        if status in (401, 403):
            return rejected(ErrorClass.CONFIG, code)  # our VAPID key or claims were refused
        return rejected(ErrorClass.REQUEST, code)
