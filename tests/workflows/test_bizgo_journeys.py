"""The post-purchase journey sending through Bizgo (the SDK's ``FakeTransport``), on the time-skipping server.

Reports arrive as Bizgo posts them: signed (``bizgo.testing.sign_webhook``) to ``/webhooks/bizgo``
of the webhook app, which answers ``{"msgKey": ...}``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from bizgo.testing import FakeTransport, RecordedRequest, sign_webhook
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.starter.receipts import ReceiptIntake, poll_reports
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.stack import Stack, embedded_stack
from durable_journeys.workflows import Outcome, PostPurchaseSettings, TimelineEntry
from tests.conftest import terminate_journeys
from tests.factories import customer, order
from tests.helpers import eventually

SECRET = "bizgo-webhook-secret-for-journey-tests-0123"
SETTINGS = PostPurchaseSettings(receipt_timeout=timedelta(minutes=10), review_hours_kst=None)


@pytest.fixture
async def fake() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def receipts() -> str:
    return "webhook"


@pytest.fixture
async def bizgo_stack(
    env: WorkflowEnvironment, sqlite_url: str, fake: FakeTransport, receipts: str
) -> AsyncIterator[Stack]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        bizgo_receipts=receipts,
        routes={"alimtalk": ["bizgo"], "sms": ["bizgo"]},
        bizgo_api_key=SecretStr("test-api-key-not-real"),
        bizgo_webhook_secret=SecretStr(SECRET),
        bizgo_sender_key="SENDER-1",
        bizgo_caller_number="0212345678",
        # The tests report receipts themselves, after the send answered: on the time-skipping
        # server a send waiting in real time for one would only hold the clock still.
        receipt_grace_seconds=0,
    )
    async with embedded_stack(
        env.client,
        database_url=sqlite_url,
        settings=settings,
        task_queue=f"tq-{uuid.uuid4()}",
        post_purchase=SETTINGS,
        care_segment="off",
        bizgo_client=fake.async_client(max_retries=0),
    ) as s:
        yield s
        await terminate_journeys(s)


def sends(fake: FakeTransport) -> list[RecordedRequest]:
    return fake.requests_for("sendOmni")


def channel_of(request: RecordedRequest) -> str:
    """The channel of a request's first message (a gateway chain has more)."""
    return next(iter(request.json["messageFlow"][0]))


def report_body(request: RecordedRequest, msg_key: str, code: str, service: str | None = None) -> dict[str, Any]:
    """Bizgo's report of one sent message (``service``: the channel it names)."""
    return {
        "msgKey": msg_key,
        "serviceType": service or {"alimtalk": "ALIMTALK", "sms": "SMS", "mms": "LMS"}[channel_of(request)],
        "reportType": "RS",
        "reportCode": code,
        "reportTime": "2026-12-01T10:00:05+09:00",
        "ref": request.json["ref"],
    }


async def post_report(stack: Stack, headers: dict[str, str], body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://webhooks"
    ) as http:
        return await http.post("/webhooks/bizgo", content=body, headers=headers)


async def report(
    stack: Stack,
    request: RecordedRequest,
    msg_key: str,
    code: str,
    service: str | None = None,
    *,
    fake: FakeTransport | None = None,
) -> httpx.Response:
    """Bizgo's report for one sent message, posted to the webhook app.

    With ``fake``, Bizgo's message inquiry tells the same (a failure is confirmed through it).
    """
    body = report_body(request, msg_key, code, service)
    if fake is not None:
        fake.on("getMessageStatusByMsgKey").data({"messages": [body]})
    return await post_report(stack, *sign_webhook(SECRET, body))


async def payment_step(stack: Stack, workflow_id: str) -> list[tuple[Outcome, Channel | None]]:
    timeline: list[TimelineEntry] = await stack.journeys.timeline(workflow_id)
    return [(e.outcome, e.channel) for e in timeline if e.step == "payment_complete"]


async def order_paid(stack: Stack, fake: FakeTransport) -> tuple[Any, RecordedRequest]:
    """Pay an order; once its first message reached Bizgo, the journey's handle and that request."""
    c = customer("010-1234-5678")
    handle = await stack.journeys.order_paid(order(c), c)
    [sent] = await eventually(lambda: _async(sends(fake)))
    return handle, sent


async def test_an_alimtalk_delivered_by_bizgo_settles_the_step(
    env: WorkflowEnvironment, bizgo_stack: Stack, fake: FakeTransport
) -> None:
    async with bizgo_stack.worker():
        handle, sent = await order_paid(bizgo_stack, fake)
        assert channel_of(sent) == "alimtalk" and sent.json["ref"] == f"{handle.id}:payment_complete:alimtalk"
        answer = await report(bizgo_stack, sent, "FAKE-MSGKEY-000001", "10000")
        assert (answer.status_code, answer.json()) == (200, {"msgKey": "FAKE-MSGKEY-000001"})
        await env.sleep(timedelta(hours=1))
        assert await payment_step(bizgo_stack, handle.id) == [
            (Outcome.SENT, Channel.ALIMTALK),
            (Outcome.DELIVERED, Channel.ALIMTALK),
        ]
    assert [channel_of(r) for r in sends(fake)] == ["alimtalk"]  # no SMS


async def test_not_a_kakaotalk_user_falls_back_to_sms_through_bizgo(
    env: WorkflowEnvironment, bizgo_stack: Stack, fake: FakeTransport
) -> None:
    async with bizgo_stack.worker():
        handle, alimtalk = await order_paid(bizgo_stack, fake)
        await report(bizgo_stack, alimtalk, "FAKE-MSGKEY-000001", "30116", fake=fake)  # Kakao could not deliver
        _, sms = await eventually(lambda: _async(sends(fake) if len(sends(fake)) == 2 else []))
        # The payment text is over 90 cp949 bytes: an LMS (Bizgo's ``mms`` without images).
        assert channel_of(sms) == "mms" and sms.json["idempotencyKey"].endswith(":payment_complete:sms")
        await report(bizgo_stack, sms, "FAKE-MSGKEY-000002", "10000")
        await env.sleep(timedelta(hours=1))
        assert await payment_step(bizgo_stack, handle.id) == [
            (Outcome.SENT, Channel.ALIMTALK),
            (Outcome.FAILED, Channel.ALIMTALK),
            (Outcome.SENT, Channel.SMS),
            (Outcome.DELIVERED, Channel.SMS),
        ]


async def test_a_rate_limited_send_is_retried_and_goes_out_once(
    env: WorkflowEnvironment, bizgo_stack: Stack, fake: FakeTransport
) -> None:
    fake.on("sendOmni").fail("service", 429, "A020", retry_after=0).default()
    c = customer("010-1234-5678")
    async with bizgo_stack.worker():
        handle = await bizgo_stack.journeys.order_paid(order(c), c)
        await eventually(lambda: _async(len(sends(fake)) == 2))
        await env.sleep(timedelta(minutes=30))  # no report: the receipt wait runs out; SMS next
        steps = await payment_step(bizgo_stack, handle.id)
    first, second = sends(fake)[:2]
    assert first.json["idempotencyKey"] == second.json["idempotencyKey"]  # the same message, retried
    assert steps[0] == (Outcome.SENT, Channel.ALIMTALK)


async def test_a_timed_out_send_is_reconciled_by_lookup_and_not_sent_twice(
    env: WorkflowEnvironment, bizgo_stack: Stack, fake: FakeTransport
) -> None:
    fake.on("sendOmni").timeout()  # the request may have reached Bizgo: the outcome is unknown
    async with bizgo_stack.worker():
        handle, sent = await order_paid(bizgo_stack, fake)
        key = sent.json["ref"]
        # Bizgo's history has it: it was taken.
        fake.on("getMessageHistory").data({"messages": [{"msgKey": "MK-9", "ref": key}], "hasNext": False})
        await eventually(lambda: _async(fake.requests_for("getMessageHistory")))
        assert (await report(bizgo_stack, sent, "MK-9", "10000")).status_code == 200
        await env.sleep(timedelta(hours=1))
        assert (Outcome.DELIVERED, Channel.ALIMTALK) in await payment_step(bizgo_stack, handle.id)
    assert len(sends(fake)) == 1  # never sent again, never an SMS


async def test_a_forged_report_is_refused_and_changes_nothing(bizgo_stack: Stack) -> None:
    headers, body = sign_webhook("not-the-secret-" + "x" * 30, {"msgKey": "MK-1", "reportCode": "10000"})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=bizgo_stack.webhook_app), base_url="http://webhooks"
    ) as http:
        answer = await http.post("/webhooks/bizgo", content=body, headers=headers)
    assert answer.status_code == 401


@pytest.mark.parametrize("receipts", ["poll"])
async def test_polled_reports_settle_steps_and_are_acknowledged(
    env: WorkflowEnvironment, bizgo_stack: Stack, fake: FakeTransport
) -> None:
    async with bizgo_stack.worker():
        handle, sent = await order_paid(bizgo_stack, fake)
        fake.on("getReportPolling").data(
            {
                "reportId": "R-1",
                "report": [
                    {
                        "msgKey": "FAKE-MSGKEY-000001",
                        "serviceType": "ALIMTALK",
                        "reportCode": "10000",
                        "reportTime": "2026-12-01T10:00:05+09:00",
                        "ref": sent.json["ref"],
                    }
                ],
            }
        ).data({"reportId": "", "report": []})
        await poll_reports(ReceiptIntake(bizgo_stack.journeys), bizgo_stack.providers.get("bizgo"), once=True)
        await env.sleep(timedelta(hours=1))
        assert await payment_step(bizgo_stack, handle.id) == [
            (Outcome.SENT, Channel.ALIMTALK),
            (Outcome.DELIVERED, Channel.ALIMTALK),
        ]
    assert [r.operation_id for r in fake.requests if "Report" in (r.operation_id or "")] == [
        "getReportPolling",
        "ackReportPolling",
        "getReportPolling",
    ]


async def test_gateway_fallback_is_one_omni_send_and_only_the_final_report_settles(
    env: WorkflowEnvironment, bizgo_stack: Stack, fake: FakeTransport
) -> None:
    bizgo_stack.journeys.post_purchase = SETTINGS.model_copy(update={"fallback": {"*": "gateway"}})
    async with bizgo_stack.worker():
        handle, sent = await order_paid(bizgo_stack, fake)
        assert [next(iter(m)) for m in sent.json["messageFlow"]] == ["alimtalk", "mms"]  # AlimTalk, then LMS
        # Kakao could not deliver: Bizgo reports the AlimTalk failed and sends the LMS itself.
        assert (await report(bizgo_stack, sent, "FAKE-MSGKEY-000001", "30116", fake=fake)).status_code == 200
        await env.sleep(timedelta(minutes=5))
        assert await payment_step(bizgo_stack, handle.id) == [(Outcome.SENT, Channel.ALIMTALK)]  # not final
        assert (await report(bizgo_stack, sent, "FAKE-MSGKEY-000001", "10000", "LMS")).status_code == 200
        await env.sleep(timedelta(minutes=5))
        assert await payment_step(bizgo_stack, handle.id) == [
            (Outcome.SENT, Channel.ALIMTALK),
            (Outcome.DELIVERED, Channel.SMS),
        ]
    assert len(sends(fake)) == 1  # one request for both channels


# -- a report must name its message, a signature carries one body, a failure is confirmed -----------


@pytest.mark.parametrize(
    ("msg_key", "status"),
    [(None, 400), ("", 200), ("   ", 200), ("FAKE-MSGKEY-999999", 200)],  # the SDK itself refuses a report without one
)
async def test_a_report_that_does_not_name_the_logged_message_settles_nothing(
    env: WorkflowEnvironment, bizgo_stack: Stack, fake: FakeTransport, msg_key: str | None, status: int
) -> None:
    """Our key as ``ref`` is guessable: without the msgKey Bizgo answered the send with, a report is void."""
    async with bizgo_stack.worker():
        handle, sent = await order_paid(bizgo_stack, fake)
        body = report_body(sent, "x", "30116")
        if msg_key is None:
            del body["msgKey"]
        else:
            body["msgKey"] = msg_key
        fake.on("getMessageStatusByMsgKey").data({"messages": [body]})
        answer = await post_report(bizgo_stack, *sign_webhook(SECRET, body))
        await env.sleep(timedelta(minutes=5))
        steps = await payment_step(bizgo_stack, handle.id)
    assert answer.status_code == status
    assert steps == [(Outcome.SENT, Channel.ALIMTALK)]  # no failure taken, so no SMS
    assert [channel_of(r) for r in sends(fake)] == ["alimtalk"]


async def test_a_captured_signature_carries_no_other_body(
    env: WorkflowEnvironment, bizgo_stack: Stack, fake: FakeTransport
) -> None:
    """Bizgo signs only the timestamp: the same signature with another body is a replay; the same body a retry."""
    async with bizgo_stack.worker():
        handle, sent = await order_paid(bizgo_stack, fake)
        delivered = report_body(sent, "FAKE-MSGKEY-000001", "10000")
        headers, body = sign_webhook(SECRET, delivered)
        first = await post_report(bizgo_stack, headers, body)
        retry = await post_report(bizgo_stack, headers, body)
        forged = json.dumps({**delivered, "reportCode": "30116"}).encode()
        fake.on("getMessageStatusByMsgKey").data({"messages": [{**delivered, "reportCode": "30116"}]})
        replayed = await post_report(bizgo_stack, headers, forged)
        await env.sleep(timedelta(minutes=5))
        steps = await payment_step(bizgo_stack, handle.id)
    assert (first.status_code, retry.status_code, replayed.status_code) == (200, 200, 401)
    assert steps == [(Outcome.SENT, Channel.ALIMTALK), (Outcome.DELIVERED, Channel.ALIMTALK)]
    assert [channel_of(r) for r in sends(fake)] == ["alimtalk"]


@pytest.mark.parametrize(
    ("inquiry", "expected"),
    [
        ("10000", [(Outcome.SENT, Channel.ALIMTALK), (Outcome.DELIVERED, Channel.ALIMTALK)]),  # it was delivered
        (None, [(Outcome.SENT, Channel.ALIMTALK)]),  # Bizgo has no final report yet
        ("missing", [(Outcome.SENT, Channel.ALIMTALK)]),  # Bizgo knows no such message
        ("other-ref", [(Outcome.SENT, Channel.ALIMTALK)]),  # Bizgo's message is another one of ours
    ],
)
async def test_a_reported_failure_is_confirmed_by_bizgo_s_inquiry_before_any_fallback(
    env: WorkflowEnvironment, bizgo_stack: Stack, fake: FakeTransport, inquiry: str | None, expected: list[Any]
) -> None:
    async with bizgo_stack.worker():
        handle, sent = await order_paid(bizgo_stack, fake)
        failed = report_body(sent, "FAKE-MSGKEY-000001", "30116")
        found = {**failed, "reportCode": inquiry} if inquiry in ("10000", None) else dict(failed)
        if inquiry == "other-ref":
            found["ref"] = "post-purchase:o-other:payment_complete:alimtalk"
        fake.on("getMessageStatusByMsgKey").data({"messages": [] if inquiry == "missing" else [found]})
        answer = await post_report(bizgo_stack, *sign_webhook(SECRET, failed))
        await env.sleep(timedelta(minutes=5))
        steps = await payment_step(bizgo_stack, handle.id)
    assert answer.status_code == 200
    assert [r.path for r in fake.requests_for("getMessageStatusByMsgKey")][-1].endswith("/FAKE-MSGKEY-000001")
    assert steps == expected
    assert [channel_of(r) for r in sends(fake)] == ["alimtalk"]  # never an SMS on an unconfirmed failure


async def test_a_failure_bizgo_cannot_confirm_now_is_answered_503(
    env: WorkflowEnvironment, bizgo_stack: Stack, fake: FakeTransport
) -> None:
    """Bizgo posts the report again later (it retries a webhook it got no answer for)."""
    async with bizgo_stack.worker():
        _, sent = await order_paid(bizgo_stack, fake)
        fake.on("getMessageStatusByMsgKey").fail("service", 500, "A999")
        answer = await report(bizgo_stack, sent, "FAKE-MSGKEY-000001", "30116")
    assert answer.status_code == 503


async def _async(value: Any) -> Any:
    return value
