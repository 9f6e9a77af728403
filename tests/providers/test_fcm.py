"""FCM HTTP v1 against ``httpx.MockTransport``: the documented token exchange and send, nothing else.

The mock token endpoint verifies the service account's signed assertion with the account's
public key (``google.auth.jwt.decode``), as Google's would.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

from durable_journeys.providers import Channel, ConfigError, ErrorClass, OutboundMessage, ReceiptMode, SendStatus
from durable_journeys.providers.fcm.provider import SCOPE, FcmProvider, ServiceAccount

TOKEN_URI = "https://oauth2.googleapis.com/token"
SEND_URL = "https://fcm.googleapis.com/v1/projects/durable-shop/messages:send"


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def account(keys: tuple[str, str]) -> ServiceAccount:
    return ServiceAccount.load(
        {
            "type": "service_account",
            "project_id": "durable-shop",
            "client_email": "push@durable-shop.iam.gserviceaccount.com",
            "private_key": keys[0],
            "private_key_id": "k1",
            "token_uri": TOKEN_URI,
        }
    )


class Google:
    """The token endpoint and FCM's send endpoint, as documented."""

    def __init__(self, public_key: str, answers: list[tuple[int, dict[str, Any], dict[str, str]]] | None = None):
        self.public_key = public_key
        self.answers = answers or []
        self.tokens_issued = 0
        self.sends: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URI:
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
            claims = jwt.decode(form["assertion"], certs=self.public_key, audience=TOKEN_URI)
            assert claims["iss"] == "push@durable-shop.iam.gserviceaccount.com" and claims["scope"] == SCOPE
            self.tokens_issued += 1
            return httpx.Response(200, json={"access_token": f"ya29.token-{self.tokens_issued}", "expires_in": 3599})
        assert str(request.url) == SEND_URL and request.method == "POST"
        assert request.headers["authorization"] == f"Bearer ya29.token-{self.tokens_issued}"
        self.sends.append(json.loads(request.content))
        if self.answers:
            status, body, headers = self.answers.pop(0)
            return httpx.Response(status, json=body, headers=headers)
        return httpx.Response(200, json={"name": f"projects/durable-shop/messages/{len(self.sends)}"})


def fcm(google: Google, account: ServiceAccount) -> FcmProvider:
    return FcmProvider(httpx.AsyncClient(transport=httpx.MockTransport(google)), account)


def push(**values: Any) -> OutboundMessage:
    return OutboundMessage(
        **{
            "channel": Channel.PUSH,
            "to": "fcm-registration-token-1",
            "subject": "장바구니를 잊지 마세요",
            "body": "담아 두신 양말이 기다립니다.",
            "idempotency_key": "cart:c-42@r1:cart_reminder:push",
            "step": "cart_reminder",
        }
        | values
    )


async def test_a_push_is_one_documented_send_with_a_service_account_token(
    keys: tuple[str, str], account: ServiceAccount
) -> None:
    google = Google(keys[1])
    p = fcm(google, account)
    first = await p.send(push())
    second = await p.send(push(to="fcm-registration-token-2"))
    assert (first.status, first.receipt, first.provider_message_id) == (
        SendStatus.ACCEPTED,
        ReceiptMode.NONE,
        "projects/durable-shop/messages/1",
    )
    assert second.status is SendStatus.ACCEPTED
    assert google.tokens_issued == 1  # the access token is reused until it nears expiry
    assert google.sends[0] == {
        "message": {
            "token": "fcm-registration-token-1",
            "notification": {"title": "장바구니를 잊지 마세요", "body": "담아 두신 양말이 기다립니다."},
            "data": {"reference": "cart:c-42@r1:cart_reminder:push", "step": "cart_reminder"},
        }
    }


def fcm_error(code: int, status: str, fcm_code: str | None = None, bad_request: bool = False) -> dict[str, Any]:
    details: list[dict[str, Any]] = []
    if fcm_code:
        details.append({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code})
    if bad_request:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": []})
    return {"error": {"code": code, "message": "...", "status": status, "details": details}}


@pytest.mark.parametrize(
    ("status", "body", "expected", "outcome"),
    [
        (404, fcm_error(404, "NOT_FOUND", "UNREGISTERED"), ErrorClass.RECIPIENT_DEAD, SendStatus.REJECTED),
        (400, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), ErrorClass.RECIPIENT_DEAD, SendStatus.REJECTED),
        (400, fcm_error(400, "INVALID_ARGUMENT", bad_request=True), ErrorClass.REQUEST, SendStatus.REJECTED),
        (
            403,
            fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"),
            ErrorClass.RECIPIENT_DEAD,
            SendStatus.REJECTED,
        ),
        (429, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), ErrorClass.RETRY, SendStatus.REJECTED),
        (503, fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"), ErrorClass.RETRY, SendStatus.REJECTED),
        (500, fcm_error(500, "INTERNAL", "INTERNAL"), ErrorClass.UNKNOWN, SendStatus.UNKNOWN),
        (401, fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"), ErrorClass.CONFIG, SendStatus.REJECTED),
    ],
    ids=[
        "unregistered",
        "invalid-token",
        "bad-payload",
        "sender-mismatch",
        "quota",
        "unavailable",
        "internal",
        "apns-auth",
    ],
)
async def test_fcm_errors_are_classed_by_their_code(
    keys: tuple[str, str],
    account: ServiceAccount,
    status: int,
    body: dict[str, Any],
    expected: ErrorClass,
    outcome: SendStatus,
) -> None:
    google = Google(keys[1], [(status, body, {"retry-after": "30"})])
    result = await fcm(google, account).send(push())
    assert (result.status, result.error_class) == (outcome, expected)
    if expected is ErrorClass.RETRY:
        assert result.retry_after is not None and result.retry_after.total_seconds() == 30


async def test_an_expired_access_token_is_renewed_on_the_next_attempt(
    keys: tuple[str, str], account: ServiceAccount
) -> None:
    google = Google(keys[1], [(401, fcm_error(401, "UNAUTHENTICATED"), {})])
    p = fcm(google, account)
    assert (await p.send(push())).error_class is ErrorClass.RETRY
    assert (await p.send(push())).status is SendStatus.ACCEPTED
    assert google.tokens_issued == 2


async def test_a_refused_service_account_is_a_config_error_and_nothing_is_sent(account: ServiceAccount) -> None:
    sends: list[httpx.Request] = []

    def google(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URI:
            return httpx.Response(400, json={"error": "invalid_grant"})
        sends.append(request)
        return httpx.Response(200, json={})

    p = FcmProvider(httpx.AsyncClient(transport=httpx.MockTransport(google)), account)
    result = await p.send(push())
    assert (result.status, result.error_class) == (SendStatus.REJECTED, ErrorClass.CONFIG)
    assert sends == []


@pytest.mark.parametrize(
    "source",
    ['{"project_id": "p"}', "not json", {"project_id": "p", "client_email": "e", "private_key": "not a key"}],
    ids=["missing-fields", "not-json", "bad-key"],
)
def test_an_unusable_service_account_is_one_line_naming_the_setting(source: Any) -> None:
    with pytest.raises(ConfigError, match="JOURNEYS_FCM_SERVICE_ACCOUNT") as caught:
        FcmProvider(httpx.AsyncClient(), ServiceAccount.load(source))
    assert "\n" not in str(caught.value) and "not a key" not in str(caught.value)
