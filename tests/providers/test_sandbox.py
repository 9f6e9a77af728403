"""The sandbox provider: its client's error mapping (MockTransport) and the real service."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import httpx
import pytest

from durable_journeys.providers import (
    Channel,
    ErrorClass,
    OutboundMessage,
    ReceiptStatus,
    SendStatus,
    SignatureError,
    WebhookError,
)
from durable_journeys.providers.sandbox import ReceiptTiming, SandboxConfig, SandboxProvider, create_sandbox_app
from durable_journeys.providers.signing import sign, verify

SECRET = "s3cret"


def msg(to: str = "01012345678", channel: Channel = Channel.ALIMTALK, key: str = "wf:step:alimtalk") -> OutboundMessage:
    return OutboundMessage(
        channel=channel, to=to, body="안녕하세요", idempotency_key=key, workflow_id="wf", step="step"
    )


def mocked(handler: object) -> SandboxProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://sandbox")  # type: ignore[arg-type]
    return SandboxProvider(client, api_key="k", webhook_secret=SECRET)


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected_class"),
    [
        (429, {"error": {"code": "RATE_LIMITED"}}, {"Retry-After": "7"}, ErrorClass.RETRY),
        (503, {}, {}, ErrorClass.RETRY),
        (401, {"error": {"code": "UNAUTHORIZED"}}, {}, ErrorClass.CONFIG),
        (422, {"error": {"code": "NOT_KAKAO_USER"}}, {}, ErrorClass.FALLBACK),
        (404, {"error": {"code": "UNREGISTERED"}}, {}, ErrorClass.RECIPIENT_DEAD),
        (400, {"error": {"code": "SOMETHING_NEW"}}, {}, ErrorClass.REQUEST),
    ],
)
async def test_answers_map_to_error_classes(status: int, body: dict, headers: dict, expected_class: ErrorClass) -> None:
    provider = mocked(lambda req: httpx.Response(status, json=body, headers=headers))
    result = await provider.send(msg())
    assert (result.status, result.error_class) == (SendStatus.REJECTED, expected_class)
    if "Retry-After" in headers:
        assert result.retry_after == timedelta(seconds=7)


async def test_request_carries_key_and_correlation() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(202, json={"message_id": "sbx_1", "status": "accepted", "receipt": "webhook"})

    result = await mocked(handler).send(msg())
    assert (result.status, result.provider_message_id) == (SendStatus.ACCEPTED, "sbx_1")
    sent = json.loads(seen[0].content)
    assert seen[0].headers["Idempotency-Key"] == "wf:step:alimtalk"
    assert seen[0].headers["Authorization"] == "Bearer k"
    assert sent["reference"] == "wf:step:alimtalk" and sent["custom_fields"] == {"workflow_id": "wf", "step": "step"}


async def test_connect_error_is_retry_and_read_timeout_is_unknown() -> None:
    def refuse(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    def lose(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("lost", request=req)

    assert (await mocked(refuse).send(msg())).error_class is ErrorClass.RETRY
    unknown = await mocked(lose).send(msg())
    assert (unknown.status, unknown.error_class) == (SendStatus.UNKNOWN, ErrorClass.UNKNOWN)


def test_signature_checks() -> None:
    body = b'{"receipts": []}'
    ts = int(time.time())
    verify(SECRET, str(ts), sign(SECRET, ts, body), body)
    verify(SECRET, str(ts), f"v1=deadbeef {sign(SECRET, ts, body)}", body)  # rotation: any match
    with pytest.raises(SignatureError):
        verify(SECRET, str(ts), sign("other", ts, body), body)
    with pytest.raises(SignatureError):
        verify(SECRET, str(ts), sign(SECRET, ts, body), body + b" ")
    with pytest.raises(SignatureError):
        verify(SECRET, str(ts - 3600), sign(SECRET, ts - 3600, body), body)  # replayed old request
    with pytest.raises(SignatureError):
        verify(SECRET, None, None, body)
    with pytest.raises(SignatureError):
        verify(SECRET, "soon", "v1=x", body)


def test_parse_webhook() -> None:
    provider = mocked(lambda req: httpx.Response(500))
    body = json.dumps(
        {
            "receipts": [
                {
                    "message_id": "sbx_1",
                    "reference": "wf:s:alimtalk",
                    "status": "failed",
                    "error_code": "KAKAO_DELIVERY_FAILED",
                    "channel": "alimtalk",
                }
            ]
        }
    ).encode()
    ts = int(time.time())
    [receipt] = provider.parse_webhook(
        {"X-Sandbox-Timestamp": str(ts), "X-Sandbox-Signature": sign(SECRET, ts, body)}, body
    )
    assert (receipt.status, receipt.error_class, receipt.idempotency_key) == (
        ReceiptStatus.FAILED,
        ErrorClass.FALLBACK,
        "wf:s:alimtalk",
    )
    with pytest.raises(WebhookError):
        provider.parse_webhook({"X-Sandbox-Timestamp": str(ts), "X-Sandbox-Signature": sign(SECRET, ts, b"[]")}, b"[]")


async def test_service_replays_the_first_answer_for_a_repeated_key() -> None:
    app = create_sandbox_app(SandboxConfig(api_key="k", webhook_url=None))
    provider = SandboxProvider(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox"),
        api_key="k",
        webhook_secret=SECRET,
    )
    first = await provider.send(msg())
    again = await provider.send(msg())
    rejected = await provider.send(msg(to="01000000005", key="other"))
    assert first.provider_message_id == again.provider_message_id
    assert len(app.state.sandbox.messages) == 1
    assert (rejected.error_class, rejected.error_code) == (ErrorClass.REQUEST, "INVALID_NUMBER")
    found = await provider.lookup("wf:step:alimtalk")
    assert found is not None and found.provider_message_id == first.provider_message_id
    assert await provider.lookup("never-sent") is None


@pytest.mark.parametrize(
    ("to", "channel", "status", "error_code"),
    [
        ("010-0000-0001", Channel.ALIMTALK, SendStatus.REJECTED, "NOT_KAKAO_USER"),
        ("010-0000-0001", Channel.SMS, SendStatus.ACCEPTED, None),
        ("010-0000-0003", Channel.SMS, SendStatus.REJECTED, "BLOCKED"),
        ("010-0000-0005", Channel.SMS, SendStatus.REJECTED, "INVALID_NUMBER"),
        ("unregistered", Channel.PUSH, SendStatus.REJECTED, "UNREGISTERED"),
        ("bounce@example.com", Channel.EMAIL, SendStatus.ACCEPTED, None),
    ],
)
async def test_magic_recipients(to: str, channel: Channel, status: SendStatus, error_code: str | None) -> None:
    app = create_sandbox_app(SandboxConfig(api_key="k"))
    provider = SandboxProvider(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox"),
        api_key="k",
        webhook_secret=SECRET,
    )
    result = await provider.send(msg(to=to, channel=channel))
    assert (result.status, result.error_code) == (status, error_code)


async def test_receipts_are_signed_and_posted() -> None:
    posted: list[httpx.Request] = []

    def webhook(req: httpx.Request) -> httpx.Response:
        posted.append(req)
        return httpx.Response(200)

    app = create_sandbox_app(
        SandboxConfig(
            api_key="k",
            webhook_url="http://hooks/webhooks/sandbox",
            webhook_secret=SECRET,
            receipt_timing=ReceiptTiming.BEFORE_RESPONSE,
        ),
        receipt_client=httpx.AsyncClient(transport=httpx.MockTransport(webhook)),
    )
    provider = SandboxProvider(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox"),
        api_key="k",
        webhook_secret=SECRET,
    )
    await provider.send(msg(to="010-0000-0006"))
    await provider.send(msg(to="bounce@example.com", channel=Channel.EMAIL, key="wf:step:email"))
    await provider.send(msg(to="010-0000-0002", key="wf:step2:alimtalk"))  # never a receipt
    receipts = [provider.parse_webhook(dict(r.headers), r.content)[0] for r in posted]
    assert [(r.status, r.error_code, r.error_class) for r in receipts] == [
        (ReceiptStatus.FAILED, "KAKAO_DELIVERY_FAILED", ErrorClass.FALLBACK),
        (ReceiptStatus.FAILED, "HARD_BOUNCE", ErrorClass.RECIPIENT_DEAD),
    ]


async def test_receipts_due_while_a_post_is_in_flight_go_out_together() -> None:
    """Like an aggregator's delivery reports: one post per batch, each receipt exactly once."""
    posted: list[list[str]] = []
    release = asyncio.Event()

    async def webhook(req: httpx.Request) -> httpx.Response:
        posted.append([r["reference"] for r in json.loads(req.content)["receipts"]])
        if len(posted) == 1:
            await release.wait()  # a slow webhook: receipts pile up meanwhile
        return httpx.Response(200)

    app = create_sandbox_app(
        SandboxConfig(
            api_key="k",
            webhook_url="http://hooks/webhooks/sandbox",
            webhook_secret=SECRET,
            receipt_delay_seconds=0,
            receipt_batch_max=3,
        ),
        receipt_client=httpx.AsyncClient(transport=httpx.MockTransport(webhook)),
    )
    provider = SandboxProvider(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox"),
        api_key="k",
        webhook_secret=SECRET,
    )
    await provider.send(msg(key="k0"))
    while not posted:
        await asyncio.sleep(0.01)
    for i in range(1, 6):
        await provider.send(msg(key=f"k{i}"))
    await asyncio.sleep(0.05)
    assert posted == [["k0"]]
    release.set()
    while sum(map(len, posted)) < 6:
        await asyncio.sleep(0.01)
    assert posted == [["k0"], ["k1", "k2", "k3"], ["k4", "k5"]]
