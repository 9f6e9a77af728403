"""Web push against a real local push endpoint that checks the VAPID token and decrypts the payload.

The endpoint does what a push service and a browser do between them: it verifies the VAPID JWT
(``py_vapid``: signature, ``aud``, ``exp``, ``sub``, and that ``k`` is our application server key)
and decrypts the aes128gcm body with the subscription's private key and auth secret
(``http_ece``), so a payload that was not encrypted for this subscription cannot pass.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import http_ece
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request, Response
from py_vapid import Vapid02

from durable_journeys.providers import Channel, ConfigError, ErrorClass, OutboundMessage, ReceiptMode, SendStatus
from durable_journeys.providers.webpush.provider import WebPushProvider, subscription
from durable_journeys.starter.serve import serving


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


@dataclass
class PushService:
    """One browser's subscription and the push service in front of it."""

    vapid_public: str
    ua_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))
    delivered: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    base_url: str = ""

    def subscription(self, path: str = "sub-1") -> str:
        return json.dumps(
            {
                "endpoint": f"{self.base_url}/push/{path}",
                "expirationTime": None,
                "keys": {"p256dh": b64url(point(self.ua_key)), "auth": b64url(self.auth)},
            }
        )

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/push/{path}")
        async def push(path: str, request: Request) -> Response:
            if path == "gone":
                return Response(status_code=410)
            authorization = request.headers.get("authorization", "")
            try:
                assert Vapid02.verify(authorization), "bad VAPID signature"
                token, key = (p.split("=", 1)[1] for p in authorization.split(" ", 1)[1].split(","))
                claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
                assert key == self.vapid_public, "not our application server key"
                assert claims["aud"] == self.base_url and claims["exp"] > time.time(), claims
                assert claims["sub"] == "mailto:push@durable.example"
                assert request.headers["content-encoding"] == "aes128gcm" and int(request.headers["ttl"]) > 0
                plain = http_ece.decrypt(
                    await request.body(), private_key=self.ua_key, auth_secret=self.auth, version="aes128gcm"
                )
            except Exception as exc:  # noqa: BLE001 - any failure is a refusal, recorded for the test
                self.refused.append(f"{type(exc).__name__}: {exc}")
                return Response(status_code=403)
            self.delivered.append(json.loads(plain))
            return Response(status_code=201, headers={"location": f"{self.base_url}/messages/{len(self.delivered)}"})

        return app


@pytest.fixture(scope="module")
def vapid() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big")), b64url(point(key))


@pytest.fixture
async def service(vapid: tuple[str, str]) -> AsyncIterator[PushService]:
    svc = PushService(vapid_public=vapid[1])
    async with serving(svc.app()) as url:
        svc.base_url = url
        yield svc


def provider(vapid: tuple[str, str], **values: Any) -> WebPushProvider:
    options: dict[str, Any] = {
        "vapid_private_key": vapid[0],
        "subject": "mailto:push@durable.example",
        "allowed_hosts": ["127.0.0.1"],
    } | values
    return WebPushProvider(httpx.AsyncClient(timeout=5), **options)


def notification(to: str, **values: Any) -> OutboundMessage:
    return OutboundMessage(
        **{
            "channel": Channel.WEB_PUSH,
            "to": to,
            "subject": "장바구니를 잊지 마세요",
            "body": "담아 두신 양말이 기다립니다.",
            "idempotency_key": "cart:c-42@r1:cart_reminder:web_push",
        }
        | values
    )


async def test_a_notification_reaches_the_browser_encrypted_and_vapid_signed(
    service: PushService, vapid: tuple[str, str]
) -> None:
    result = await provider(vapid).send(notification(service.subscription()))
    assert (result.status, result.receipt) == (SendStatus.ACCEPTED, ReceiptMode.NONE), service.refused
    assert result.provider_message_id == f"{service.base_url}/messages/1"
    assert service.delivered == [
        {
            "title": "장바구니를 잊지 마세요",
            "body": "담아 두신 양말이 기다립니다.",
            "reference": "cart:c-42@r1:cart_reminder:web_push",
        }
    ]


async def test_another_application_server_key_is_refused(service: PushService) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    key = b64url(stranger.private_numbers().private_value.to_bytes(32, "big"))
    result = await provider((key, "")).send(notification(service.subscription()))
    assert (result.status, result.error_class) == (SendStatus.REJECTED, ErrorClass.CONFIG)
    assert service.delivered == [] and "not our application server key" in service.refused[0]


async def test_a_payload_for_another_browser_cannot_be_read(service: PushService, vapid: tuple[str, str]) -> None:
    other = PushService(vapid_public=vapid[1], base_url=service.base_url)  # its keys, the same endpoint
    await provider(vapid).send(notification(other.subscription()))
    assert service.delivered == [] and service.refused  # decryption with the real browser's keys failed


async def test_an_expired_subscription_is_dead(service: PushService, vapid: tuple[str, str]) -> None:
    result = await provider(vapid).send(notification(service.subscription("gone")))
    assert (result.status, result.error_class, result.error_code) == (
        SendStatus.REJECTED,
        ErrorClass.RECIPIENT_DEAD,
        "HTTP_410",
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://169.254.169.254/latest/meta-data",  # cloud metadata: the classic SSRF target
        "https://internal.example/push",
        "http://fcm.googleapis.com/fcm/send/x",  # a push service, but not over https
        "https://fcm.googleapis.com.evil.example/x",
    ],
)
async def test_a_subscription_pointing_anywhere_but_a_push_service_is_not_called(
    vapid: tuple[str, str], endpoint: str
) -> None:
    calls: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(201)

    p = WebPushProvider(
        httpx.AsyncClient(transport=httpx.MockTransport(record)),
        vapid_private_key=vapid[0],
        subject="mailto:push@durable.example",
    )
    sub = json.dumps(
        {
            "endpoint": endpoint,
            "keys": {"p256dh": b64url(point(ec.generate_private_key(ec.SECP256R1()))), "auth": b64url(os.urandom(16))},
        }
    )
    result = await p.send(notification(sub))
    assert (result.error_class, result.error_code) == (ErrorClass.RECIPIENT_DEAD, "ENDPOINT_NOT_ALLOWED")
    assert calls == []


@pytest.mark.parametrize(
    "token", ["fcm-app-token", "{not json", '{"endpoint": "https://fcm.googleapis.com/x"}', '{"keys": {}}']
)
def test_only_a_full_subscription_is_one(token: str) -> None:
    assert subscription(token) is None


@pytest.mark.parametrize(
    ("values", "setting"),
    [({"vapid_private_key": "not-a-key"}, "VAPID_PRIVATE_KEY"), ({"subject": "push@durable.example"}, "SUBJECT")],
)
def test_unusable_vapid_settings_are_one_line(vapid: tuple[str, str], values: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError, match=f"JOURNEYS_WEBPUSH_{setting}"):
        provider(vapid, **values)
