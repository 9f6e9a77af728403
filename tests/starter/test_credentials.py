"""Credentials fail closed, and each opens as little as possible."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from durable_journeys.providers import ConfigError, SignatureError
from durable_journeys.providers.sandbox import SandboxConfig, create_sandbox_app
from durable_journeys.providers.secrets import KNOWN_DEV_SECRETS
from durable_journeys.providers.signing import sign, verify
from durable_journeys.starter.settings import SECRET_SETTINGS, Settings, dev_settings
from durable_journeys.starter.stack import Stack
from durable_journeys.starter.tokens import TokenError, inbox_token_subject, mint_inbox_token

GOOD = "kR7-vQ2_zX9pL4mN8bT1wY6cH3jF5sD0aE"
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://hooks") as c:
        yield c


# -- no usable default ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SECRET_SETTINGS)
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is not set"),
        ("   ", "is not set"),
        ("short-but-random-31-bytes-xxxxx", "shorter than 32 bytes"),
        ("a" * 64, "not random"),
        ("0123" * 10, "not random"),
        *[(known, "known development value") for known in sorted(KNOWN_DEV_SECRETS)],
    ],
)
def test_a_bad_secret_is_refused_in_one_line_naming_the_setting(name: str, value: str, problem: str) -> None:
    s = Settings(**{n: SecretStr(GOOD) for n in SECRET_SETTINGS}).model_copy(update={name: SecretStr(value)})
    with pytest.raises(ConfigError) as err:
        s.require_secrets(*SECRET_SETTINGS)
    message = str(err.value)
    assert f"JOURNEYS_{name.upper()}" in message and problem in message and "\n" not in message
    assert len(value) < 12 or value not in message  # a secret is never echoed


@FUZZ
@given(value=st.text(max_size=31))
def test_any_secret_under_32_bytes_is_refused(value: str) -> None:
    if len(value.encode()) >= 32:
        return
    with pytest.raises(ConfigError):
        Settings(api_key=SecretStr(value)).require_secrets("api_key")


def test_defaults_hold_no_usable_secret() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    for name in SECRET_SETTINGS:
        with pytest.raises(ConfigError):
            s.require_secrets(name)


def test_development_mode_makes_random_secrets_per_run_and_keeps_good_ones() -> None:
    a, b = dev_settings(Settings(_env_file=None)), dev_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    for name in SECRET_SETTINGS:
        a.require_secrets(name)
        assert getattr(a, name).get_secret_value() != getattr(b, name).get_secret_value()
    kept = dev_settings(Settings(api_key=SecretStr(GOOD)))
    assert kept.api_key.get_secret_value() == GOOD


@pytest.mark.parametrize(
    ("command", "setting"),
    [
        ("worker", "JOURNEYS_SANDBOX_API_KEY"),
        ("webhooks", "JOURNEYS_API_KEY"),
        ("sandbox", "JOURNEYS_SANDBOX_API_KEY"),
    ],
)
def test_production_commands_refuse_to_start_without_secrets(command: str, setting: str, tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env["JOURNEYS_SANDBOX_WEBHOOK_SECRET"] = "sandbox-webhook-secret"  # the old public default
    proc = subprocess.run(
        [sys.executable, "-m", "durable_journeys.starter.cli", command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and setting in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "sandbox-webhook-secret" not in proc.stderr


# -- an empty key or secret verifies nothing -----------------------------------------------------


def test_an_empty_webhook_secret_verifies_nothing() -> None:
    body, ts = b"{}", int(time.time())
    with pytest.raises(SignatureError):
        verify("", str(ts), sign("", ts, body), body)


@pytest.mark.parametrize("header", ["Bearer ", "Bearer", "bearer  ", "", "Basic Og=="])
async def test_an_empty_api_key_lets_nothing_in(stack: Stack, header: str) -> None:
    from durable_journeys.starter.webhooks import create_webhook_app

    app = create_webhook_app(stack.journeys, stack.providers, api_key="", inbox_token_secret="")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as http:
        resp = await http.post(
            "/events", json={"type": "app.opened", "customer_id": "c-1"}, headers={"Authorization": header}
        )
        inbox = await http.get("/inbox/c-1", headers={"Authorization": header})
    assert resp.status_code == 401
    assert inbox.status_code == 404  # no inbox secret: the inbox routes are not served at all


@pytest.mark.parametrize("header", ["Bearer ", "Bearer", "", "Bearer x"])
async def test_the_sandbox_with_an_empty_key_accepts_nothing(header: str) -> None:
    app = create_sandbox_app(SandboxConfig(api_key=""))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as http:
        sent = await http.post(
            "/v1/messages",
            json={"channel": "sms", "to": "01012345678", "body": "hi"},
            headers={"Authorization": header},
        )
    assert sent.status_code == 401


# -- every credential opens as little as possible ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/messages"),
        ("GET", "/v1/messages/sbx_1"),
        ("GET", "/v1/messages/by-reference/k"),
        ("POST", "/v1/control/outage"),
        ("POST", "/v1/control/latency"),
    ],
)
async def test_the_sandbox_message_list_and_controls_need_its_key(stack: Stack, method: str, path: str) -> None:
    key = stack.settings.sandbox_api_key.get_secret_value()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.sandbox_app), base_url="http://s") as http:
        refused = await http.request(method, path, json={"seconds": 0})
        wrong = await http.request(method, path, json={"seconds": 0}, headers={"Authorization": "Bearer nope"})
        allowed = await http.request(method, path, json={"seconds": 0}, headers={"Authorization": f"Bearer {key}"})
        health = await http.get("/healthz")
    assert refused.status_code == 401 and wrong.status_code == 401
    assert allowed.status_code in (200, 404) and health.status_code == 200


def test_inbox_tokens_open_one_customer_until_they_expire() -> None:
    token = mint_inbox_token(GOOD, "c-a", timedelta(minutes=5), now=1_000)
    assert inbox_token_subject(GOOD, token, now=1_001) == "c-a"
    with pytest.raises(TokenError):
        inbox_token_subject(GOOD, token, now=1_000 + 301)  # expired
    with pytest.raises(TokenError):
        inbox_token_subject("another-secret-of-at-least-32-bytes!", token, now=1_001)
    with pytest.raises(TokenError):
        inbox_token_subject("", token, now=1_001)  # no secret: nothing verifies
    with pytest.raises(ConfigError):
        mint_inbox_token("", "c-a", timedelta(minutes=5))
    with pytest.raises(ConfigError):
        mint_inbox_token(GOOD, "c-a", timedelta(days=31))


@FUZZ
@given(position=st.integers(min_value=0, max_value=200), char=st.sampled_from("AaZz09-_.="))
def test_a_tampered_inbox_token_is_refused(position: int, char: str) -> None:
    token = mint_inbox_token(GOOD, "c-a", timedelta(minutes=5))
    i = position % len(token)
    tampered = token[:i] + char + token[i + 1 :]
    if tampered == token:
        return
    with pytest.raises(TokenError):
        inbox_token_subject(GOOD, tampered)


@FUZZ
@given(header=st.text(max_size=600))
async def test_any_inbox_authorization_header_is_refused_cleanly(stack: Stack, header: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://h") as http:
        resp = await http.get("/inbox/c-1", headers=[(b"Authorization", header.encode("utf-8"))])
    assert resp.status_code == 401


async def test_customer_a_token_gets_403_on_customer_b_inbox(stack: Stack, http: httpx.AsyncClient) -> None:
    a = stack.inbox_auth("c-a")
    assert (await http.get("/inbox/c-a", headers=a)).status_code == 200
    assert (await http.get("/inbox/c-b", headers=a)).status_code == 403
    assert (await http.post("/inbox/c-b/1/read", headers=a)).status_code == 403


# -- docs ----------------------------------------------------------------------------------------


async def test_docs_are_off_by_default_on_both_apps(stack: Stack) -> None:
    for app in (stack.webhook_app, stack.sandbox_app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as http:
            assert (await http.get("/docs")).status_code in (401, 404)
            assert (await http.get("/openapi.json")).status_code in (401, 404)


async def test_docs_when_enabled_load_nothing_from_the_internet(stack: Stack) -> None:
    from durable_journeys.starter.webhooks import create_webhook_app

    app = create_webhook_app(stack.journeys, stack.providers, api_key=GOOD, inbox_token_secret=GOOD, docs=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as http:
        page = await http.get("/docs")
        spec = await http.get("/openapi.json")
        assets = [await http.get(f"/docs-assets/{name}") for name in ("swagger-ui-bundle.js", "swagger-ui.css")]
    assert page.status_code == 200 and spec.status_code == 200 and "/events" in spec.json()["paths"]
    assert "http://" not in page.text and "https://" not in page.text  # every asset is served here
    assert all(a.status_code == 200 and len(a.content) > 10_000 for a in assets)


# -- a secret that was given is kept or refused, never replaced ----------------------------------------

BAD_GIVEN = ["x", "short-but-set", "sandbox-webhook-secret", "changeme", "a" * 40, "0123" * 10]


@pytest.mark.parametrize("name", SECRET_SETTINGS)
@pytest.mark.parametrize("value", BAD_GIVEN)
def test_a_given_secret_that_cannot_serve_is_refused_in_one_line(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        dev_settings(Settings(_env_file=None, **{name: SecretStr(value)}))  # type: ignore[call-arg]
    message = str(refused.value)
    assert message.startswith(f"JOURNEYS_{name.upper()} ") and "\n" not in message and value not in message


async def test_the_embedded_stack_refuses_a_given_short_key_instead_of_replacing_it(
    env: object, tmp_path: object
) -> None:
    from durable_journeys.starter.testing import journey_kit

    with pytest.raises(ConfigError, match="^JOURNEYS_API_KEY is shorter than 32 bytes"):
        async with journey_kit(env, tmp_path / "j.db", settings=Settings(api_key=SecretStr("tooshort"))):  # type: ignore[arg-type, operator]
            pass


@pytest.mark.parametrize("value", ["x", "changeme", "a" * 40, "short-bizgo-secret"])
def test_every_secret_that_verifies_webhooks_gets_the_same_checks(value: str) -> None:
    from durable_journeys.starter.assembly import provider_problem

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        routes={"alimtalk": ["bizgo"]},
        bizgo_api_key=SecretStr("issued-by-bizgo"),
        bizgo_sender_key="SENDER-1",
        bizgo_webhook_secret=SecretStr(value),
    )
    problem = provider_problem(settings, webhooks=True)
    assert problem is not None and problem.startswith("JOURNEYS_BIZGO_WEBHOOK_SECRET ") and value not in problem
    good = settings.model_copy(update={"bizgo_webhook_secret": SecretStr(GOOD)})
    assert provider_problem(good, webhooks=True) is None


async def test_a_provider_no_channel_routes_to_has_no_webhook(stack: Stack) -> None:
    """The sandbox is always configured; in production nothing routes to it, so its known secret opens nothing."""
    from durable_journeys.activities import Channel
    from durable_journeys.providers import ProviderRegistry
    from durable_journeys.starter.webhooks import create_webhook_app

    inbox = stack.providers.get("inbox")
    routed = ProviderRegistry(
        {"sandbox": stack.providers.get("sandbox"), "inbox": inbox}, routes={Channel.IN_APP: "inbox"}
    )
    app = create_webhook_app(stack.journeys, routed, api_key=GOOD)
    body = b'{"receipts": []}'
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as http:
        resp = await http.post("/webhooks/sandbox", content=body, headers=stack.signed_receipts(body))
    assert resp.status_code == 404


async def test_without_an_inbox_secret_the_webhook_app_serves_events_and_receipts_only(stack: Stack) -> None:
    from durable_journeys.starter.webhooks import webhook_app_for

    settings = stack.settings.model_copy(update={"inbox_token_secret": SecretStr("")})
    app = webhook_app_for(settings, stack.journeys, stack.providers)
    body = b'{"receipts": []}'
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as http:
        inbox = await http.get("/inbox/c-1", headers={"Authorization": "Bearer anything"})
        events = await http.post("/events", json={"type": "app.opened", "customer_id": "c-1"}, headers=stack.api_auth())
        receipts = await http.post("/webhooks/sandbox", content=body, headers=stack.signed_receipts(body))
    assert (inbox.status_code, events.status_code, receipts.status_code) == (404, 202, 200)


@pytest.mark.parametrize(
    ("url", "secret", "setting"),
    [
        ("http://shop.example/m", "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY", "JOURNEYS_WEBHOOK_CHANNEL_URL"),
        (
            "https://user:pw@shop.example/m",
            "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
            "JOURNEYS_WEBHOOK_CHANNEL_URL",
        ),
        ("https://shop.example/m", "whsec_eA==", "JOURNEYS_WEBHOOK_CHANNEL_SECRET"),  # one byte
        ("https://shop.example/m", "whsec_" + "A" * 32, "JOURNEYS_WEBHOOK_CHANNEL_SECRET"),  # 24 zero bytes
        ("https://shop.example/m", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY", "JOURNEYS_WEBHOOK_CHANNEL_SECRET"),
    ],
)
def test_the_webhook_channel_needs_https_and_a_real_key(url: str, secret: str, setting: str) -> None:
    from durable_journeys.providers.webhook_channel.provider import SignedWebhookProvider

    with pytest.raises(ConfigError, match=f"^{setting} "):
        SignedWebhookProvider(httpx.AsyncClient(), url=url, secret=secret)


def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path: object) -> None:
    from pathlib import Path

    from durable_journeys.starter.database import build_store

    path = Path(str(tmp_path)) / "data" / "journeys.db"
    build_store(Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{path}"))  # type: ignore[call-arg]
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600


def test_read_only_commands_make_no_store(tmp_path: object) -> None:
    from pathlib import Path

    missing = Path(str(tmp_path)) / "nowhere" / "journeys.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env["JOURNEYS_DATABASE_URL"] = f"sqlite+aiosqlite:///{missing}"
    proc = subprocess.run(
        [sys.executable, "-m", "durable_journeys.starter.cli", "report"],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "no store at" in proc.stderr
    assert not missing.parent.exists()


def test_the_codec_token_is_given_to_the_browser_not_to_the_server() -> None:
    import inspect

    from durable_journeys.starter.dev import codec_help
    from durable_journeys.starter.devserver import start_dev_server

    lines = codec_help("http://127.0.0.1:9191", "tok-" + GOOD)
    assert f"http://127.0.0.1:9191/tok-{GOOD}" in "\n".join(lines)
    assert any("--codec-endpoint http://127.0.0.1:9191 " in line for line in lines)  # the port chosen
    assert "codec" not in str(inspect.signature(start_dev_server))
