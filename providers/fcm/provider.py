"""App push through Firebase Cloud Messaging's HTTP v1 API: httpx, and google-auth for the service account.

Why not ``firebase-admin``: its messaging module keeps a process-wide app and makes its own HTTP
calls, which cannot be pointed at an ``httpx.MockTransport``; the v1 API is one documented POST.
``google-auth`` signs the service account's OAuth 2.0 assertion (RFC 7523, the documented
"HTTP/REST" flow for service accounts) and we exchange it over the same async ``httpx`` client,
so nothing blocks the event loop and tests run offline against the documented requests.

Error handling follows FCM's error codes: ``UNREGISTERED``, an invalid registration token
(``INVALID_ARGUMENT`` with an ``FcmError`` detail) and ``SENDER_ID_MISMATCH`` mark the token dead;
``QUOTA_EXCEEDED`` and ``UNAVAILABLE`` are retried (after ``Retry-After``); ``INTERNAL`` may have
sent; a bad service account is a configuration error. Push has no delivery receipts.

Nothing here knows Temporal.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from google.auth import crypt, jwt

from durable_journeys.providers.base import (
    Channel,
    ErrorClass,
    OutboundMessage,
    ReceiptMode,
    SendResult,
    SendStatus,
)
from durable_journeys.providers.common import NOT_SENT_ERRORS, NoReceipts, rejected, retry_after, unknown
from durable_journeys.providers.errors import ConfigError

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
ENDPOINT = "https://fcm.googleapis.com/v1/projects/{project}/messages:send"
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


@dataclass(frozen=True)
class ServiceAccount:
    """The fields of a Firebase service account key (the JSON file from the Firebase console)."""

    project_id: str
    client_email: str
    private_key: str = field(repr=False)
    private_key_id: str = ""
    token_uri: str = "https://oauth2.googleapis.com/token"

    @classmethod
    def load(cls, source: Path | str | dict[str, Any]) -> ServiceAccount:
        """From a key file path, its JSON text, or its parsed content.

        Raises:
            ConfigError: the key cannot be read or lacks a field (never echoing the key).
        """
        try:
            if isinstance(source, Path):
                source = source.expanduser().read_text()
            info = json.loads(source) if isinstance(source, str) else source
            return cls(
                project_id=info["project_id"],
                client_email=info["client_email"],
                private_key=info["private_key"],
                private_key_id=info.get("private_key_id", ""),
                token_uri=info.get("token_uri") or "https://oauth2.googleapis.com/token",
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            what = f"missing {exc}" if isinstance(exc, KeyError) else type(exc).__name__
            raise ConfigError(f"JOURNEYS_FCM_SERVICE_ACCOUNT is not a usable service account key ({what})") from None


class FcmProvider(NoReceipts):
    """Sends app push notifications with FCM HTTP v1.

    Args:
        client: the HTTP client for the token exchange and the sends (its timeout applies).
        account: the service account.
        name: the provider name in routes and the message log.

    Raises:
        ConfigError: the private key cannot be loaded.
    """

    def __init__(self, client: httpx.AsyncClient, account: ServiceAccount, *, name: str = "fcm") -> None:
        self.name = name
        self.channels = frozenset({Channel.PUSH})
        self._client = client
        self._account = account
        try:
            self._signer = crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
                account.private_key, account.private_key_id or None
            )
        except (ValueError, TypeError, IndexError):
            raise ConfigError("JOURNEYS_FCM_SERVICE_ACCOUNT: its private_key is not a PEM RSA key") from None
        self._token: tuple[str, float] | None = None  # (access token, expires at, monotonic)
        self._token_lock = asyncio.Lock()

    # OAuth 2.0 --------------------------------------------------------------------------------

    def assertion(self, now: float | None = None) -> str:
        """The signed JWT the token endpoint exchanges for an access token (valid one hour)."""
        issued = int(now if now is not None else time.time())
        payload = {
            "iss": self._account.client_email,
            "scope": SCOPE,
            "aud": self._account.token_uri,
            "iat": issued,
            "exp": issued + 3600,
        }
        signed: bytes = jwt.encode(self._signer, payload)  # type: ignore[no-untyped-call]
        return signed.decode()

    async def _access_token(self) -> str:
        """A cached access token, refreshed a minute before it expires.

        Raises:
            ConfigError: the token endpoint refused the service account.
            httpx.TransportError: it could not be reached.
        """
        async with self._token_lock:
            if self._token and self._token[1] > time.monotonic() + 60:
                return self._token[0]
            resp = await self._client.post(
                self._account.token_uri,
                data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": self.assertion()},
            )
            if resp.status_code != 200:
                if resp.status_code in (400, 401, 403):
                    raise ConfigError(f"FCM token endpoint refused the service account (HTTP {resp.status_code})")
                raise httpx.HTTPStatusError("token endpoint unavailable", request=resp.request, response=resp)
            data = resp.json()
            self._token = (data["access_token"], time.monotonic() + float(data.get("expires_in", 3600)))
            return self._token[0]

    # sending ---------------------------------------------------------------------------------

    def payload(self, msg: OutboundMessage) -> dict[str, Any]:
        """The v1 ``messages:send`` body for ``msg``."""
        data = {"reference": msg.idempotency_key, **({"step": msg.step} if msg.step else {})}
        notification = {"body": msg.body, **({"title": msg.subject} if msg.subject else {})}
        return {"message": {"token": msg.to, "notification": notification, "data": data}}

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Send one notification to one registration token."""
        try:
            token = await self._access_token()
        except ConfigError as exc:
            return rejected(ErrorClass.CONFIG, "AUTH_REFUSED", str(exc))
        except (httpx.TransportError, httpx.HTTPStatusError, ValueError, KeyError) as exc:
            return rejected(ErrorClass.RETRY, "TOKEN_UNAVAILABLE", type(exc).__name__)  # nothing was sent
        url = ENDPOINT.format(project=self._account.project_id)
        try:
            resp = await self._client.post(url, json=self.payload(msg), headers={"Authorization": f"Bearer {token}"})
        except NOT_SENT_ERRORS as exc:
            return rejected(ErrorClass.RETRY, type(exc).__name__)
        except httpx.TransportError as exc:
            return unknown(type(exc).__name__)
        if resp.status_code == 200:
            name = _json(resp).get("name")
            return SendResult(
                status=SendStatus.ACCEPTED,
                provider_message_id=name if isinstance(name, str) else None,
                receipt=ReceiptMode.NONE,
            )
        return self._error(resp)

    def _error(self, resp: httpx.Response) -> SendResult:
        error = _json(resp).get("error")
        error = error if isinstance(error, dict) else {}
        status = str(error.get("status") or f"HTTP_{resp.status_code}")
        listed = error.get("details")
        details: list[Any] = listed if isinstance(listed, list) else []
        fcm_code = next(
            (str(d.get("errorCode")) for d in details if isinstance(d, dict) and d.get("@type") == _FCM_ERROR),
            None,
        )
        code = fcm_code or status
        wait = retry_after(resp.headers)
        match code:
            case "UNREGISTERED" | "SENDER_ID_MISMATCH":
                return rejected(ErrorClass.RECIPIENT_DEAD, code)
            case "INVALID_ARGUMENT" if fcm_code:  # FCM's own detail: the registration token is invalid
                return rejected(ErrorClass.RECIPIENT_DEAD, code)
            case "QUOTA_EXCEEDED" | "UNAVAILABLE":
                return rejected(ErrorClass.RETRY, code, after=wait)
            case "INTERNAL":
                return unknown(code)
            case "THIRD_PARTY_AUTH_ERROR" | "PERMISSION_DENIED":
                return rejected(ErrorClass.CONFIG, code)
            case "UNAUTHENTICATED":
                self._token = None  # expired or revoked: the next attempt gets a new one
                return rejected(ErrorClass.RETRY, code)
        if resp.status_code == 429 or resp.status_code == 503:
            return rejected(ErrorClass.RETRY, code, after=wait)
        if resp.status_code >= 500:
            return unknown(code)
        if resp.status_code in (401, 403):
            return rejected(ErrorClass.CONFIG, code)
        return rejected(ErrorClass.REQUEST, code)  # e.g. INVALID_ARGUMENT about the payload


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        value = resp.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
