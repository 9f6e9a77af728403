"""Providers from settings: routes per channel, and a routed provider without its settings stops the start."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr, ValidationError

from durable_journeys.activities import Store
from durable_journeys.providers import Channel, ConfigError
from durable_journeys.providers.bizgo.provider import BizgoProvider
from durable_journeys.providers.fcm.provider import FcmProvider
from durable_journeys.providers.sandbox import SandboxProvider
from durable_journeys.providers.smtp.provider import SmtpProvider
from durable_journeys.providers.webhook_channel.provider import SignedWebhookProvider
from durable_journeys.providers.webpush.provider import WebPushProvider
from durable_journeys.starter.assembly import build_providers, channel_routes, provider_problem
from durable_journeys.starter.settings import Settings
from tests.starter.test_cli import journeys

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def service_account(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = tmp_path_factory.mktemp("fcm") / "service-account.json"
    path.write_text(json.dumps({"project_id": "p", "client_email": "e@p.iam", "private_key": pem.decode()}))
    return path


@pytest.fixture(scope="module")
def vapid_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return base64.urlsafe_b64encode(key.private_numbers().private_value.to_bytes(32, "big")).decode().rstrip("=")


def everything(service_account: Path, vapid_key: str) -> dict[str, Any]:
    return {
        "routes": {
            "alimtalk": ["bizgo"],
            "sms": ["bizgo"],
            "push": ["fcm"],
            "web_push": ["webpush"],
            "email": ["smtp"],
            "webhook": ["webhook"],
        },
        "default_provider": "none",
        "bizgo_api_key": SecretStr("bizgo-key"),
        "bizgo_sender_key": "SK",
        "bizgo_caller_number": "0212345678",
        "fcm_service_account": SecretStr(str(service_account)),
        "webpush_vapid_private_key": SecretStr(vapid_key),
        "webpush_subject": "mailto:push@shop.example",
        "smtp_host": "smtp.shop.example",
        "smtp_sender": "Shop <shop@shop.example>",
        "webhook_channel_url": "https://shop.example/messages",
        "webhook_channel_secret": SecretStr(WHSEC),
    }


async def test_every_channel_goes_to_its_routed_provider(service_account: Path, vapid_key: str, tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    registry = build_providers(settings(**everything(service_account, vapid_key)), store)
    kinds = {
        Channel.ALIMTALK: BizgoProvider,
        Channel.SMS: BizgoProvider,
        Channel.PUSH: FcmProvider,
        Channel.WEB_PUSH: WebPushProvider,
        Channel.EMAIL: SmtpProvider,
        Channel.WEBHOOK: SignedWebhookProvider,
    }
    for channel, kind in kinds.items():
        assert isinstance(registry.for_channel(channel), kind), channel
    with pytest.raises(ConfigError, match="rcs"):  # default_provider none: no provider, no silent sandbox
        registry.for_channel(Channel.RCS)
    await store.close()


def test_by_default_everything_goes_to_the_sandbox_and_in_app_to_the_inbox() -> None:
    routes = channel_routes(settings())
    assert routes.pop(Channel.IN_APP) == "inbox"
    assert set(routes.values()) == {"sandbox"} and len(routes) == len(Channel) - 1
    assert isinstance(SandboxProvider, type)


@pytest.mark.parametrize(
    ("drop", "setting"),
    [
        ("bizgo_api_key", "JOURNEYS_BIZGO_API_KEY"),
        ("bizgo_sender_key", "JOURNEYS_BIZGO_SENDER_KEY"),
        ("bizgo_caller_number", "JOURNEYS_BIZGO_CALLER_NUMBER"),
        ("fcm_service_account", "JOURNEYS_FCM_SERVICE_ACCOUNT"),
        ("webpush_vapid_private_key", "JOURNEYS_WEBPUSH_VAPID_PRIVATE_KEY"),
        ("webpush_subject", "JOURNEYS_WEBPUSH_SUBJECT"),
        ("smtp_host", "JOURNEYS_SMTP_HOST"),
        ("smtp_sender", "JOURNEYS_SMTP_SENDER"),
        ("webhook_channel_url", "JOURNEYS_WEBHOOK_CHANNEL_URL"),
        ("webhook_channel_secret", "JOURNEYS_WEBHOOK_CHANNEL_SECRET"),
    ],
)
def test_a_routed_provider_without_its_setting_is_one_line_naming_it(
    service_account: Path, vapid_key: str, drop: str, setting: str
) -> None:
    values = everything(service_account, vapid_key)
    del values[drop]
    problem = provider_problem(settings(**values), webhooks=False)
    assert problem is not None and setting in problem and "\n" not in problem


def test_the_webhook_app_needs_bizgo_s_webhook_secret_the_worker_does_not(
    service_account: Path, vapid_key: str
) -> None:
    s = settings(**everything(service_account, vapid_key))
    assert provider_problem(s, webhooks=False) is None
    assert "JOURNEYS_BIZGO_WEBHOOK_SECRET" in (provider_problem(s, webhooks=True) or "")


@pytest.mark.parametrize(
    ("values", "setting"),
    [
        ({"fcm_service_account": SecretStr('{"project_id": "p"}')}, "JOURNEYS_FCM_SERVICE_ACCOUNT"),
        ({"webpush_vapid_private_key": SecretStr("nope")}, "JOURNEYS_WEBPUSH_VAPID_PRIVATE_KEY"),
        ({"webhook_channel_secret": SecretStr("plain-text")}, "JOURNEYS_WEBHOOK_CHANNEL_SECRET"),
    ],
)
def test_an_unusable_credential_is_one_line_and_never_echoed(
    service_account: Path, vapid_key: str, tmp_path: Path, values: dict[str, Any], setting: str
) -> None:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    with pytest.raises(ConfigError, match=setting) as caught:
        build_providers(settings(**(everything(service_account, vapid_key) | values)), store)
    for secret in values.values():
        assert secret.get_secret_value() not in str(caught.value)


def test_an_unknown_provider_name_in_routes_is_refused() -> None:
    with pytest.raises(ValidationError):
        settings(routes={"sms": ["twilio"]})


def test_the_worker_refuses_to_start_without_a_routed_provider_s_key() -> None:
    done = journeys(
        "worker",
        env={"JOURNEYS_ROUTES": '{"alimtalk": ["bizgo"]}', "JOURNEYS_DEFAULT_PROVIDER": "none"},
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "journeys: JOURNEYS_BIZGO_API_KEY is not set: issue a key in Bizgo's console (발송관리 > 연동관리)"
    ]
