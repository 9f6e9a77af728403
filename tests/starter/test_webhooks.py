"""The webhook app: signed receipts signal the journey; forged ones are refused."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.providers.signing import sign
from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import Outcome
from tests.factories import customer, order
from tests.helpers import alimtalk_waiting_for_receipt


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://hooks") as c:
        yield c


async def waiting_for_receipt(stack: Stack) -> tuple[str, bytes]:
    """Start a journey whose AlimTalk gets no receipt from the sandbox (…0002); return its receipt body."""
    workflow_id, message = await alimtalk_waiting_for_receipt(stack)
    body = json.dumps(
        {
            "receipts": [
                {
                    "message_id": message["id"],
                    "reference": message["reference"],
                    "channel": "alimtalk",
                    "status": "delivered",
                }
            ]
        }
    ).encode()
    return workflow_id, body


async def test_valid_receipt_signals_the_journey_and_a_duplicate_is_harmless(
    env: WorkflowEnvironment, stack: Stack, http: httpx.AsyncClient
) -> None:
    async with stack.worker():
        workflow_id, body = await waiting_for_receipt(stack)
        first = await http.post("/webhooks/sandbox", content=body, headers=stack.signed_receipts(body))
        again = await http.post("/webhooks/sandbox", content=body, headers=stack.signed_receipts(body))
        await env.sleep(timedelta(hours=1))
        timeline = await stack.journeys.timeline(workflow_id)
    assert first.status_code == 200 and first.json()["signalled"] == 1
    assert again.status_code == 200 and again.json()["duplicate"] == 1
    assert [(e.step, e.channel) for e in timeline if e.outcome is Outcome.DELIVERED] == [
        ("payment_complete", Channel.ALIMTALK)
    ]
    assert [m["channel"] for m in stack.sandbox.messages.values()] == ["alimtalk"]  # no SMS fallback


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param("forged", id="forged"),
        pytest.param("stale", id="replayed-old-timestamp"),
    ],
)
async def test_forged_or_missing_signature_gets_401_and_signals_nothing(
    env: WorkflowEnvironment, stack: Stack, http: httpx.AsyncClient, headers: object
) -> None:
    async with stack.worker():
        workflow_id, body = await waiting_for_receipt(stack)
        if headers == "forged":
            ts = int(time.time())
            headers = {"X-Sandbox-Timestamp": str(ts), "X-Sandbox-Signature": sign("guess", ts, body)}
        elif headers == "stale":
            headers = stack.signed_receipts(body, timestamp=int(time.time()) - 3600)
        resp = await http.post("/webhooks/sandbox", content=body, headers=headers)  # type: ignore[arg-type]
        assert resp.status_code == 401
        await env.sleep(timedelta(hours=1))
        timeline = await stack.journeys.timeline(workflow_id)
    # the receipt was never believed: the journey fell back to SMS after the timeout
    assert [(e.channel, e.outcome) for e in timeline if e.channel] == [
        (Channel.ALIMTALK, Outcome.SENT),
        (Channel.ALIMTALK, Outcome.NO_RECEIPT),
        (Channel.SMS, Outcome.SENT),
        (Channel.SMS, Outcome.DELIVERED),
    ]
    log = {m.channel: m for m in await stack.store.messages()}
    assert log["alimtalk"].receipt_status is None


async def test_unknown_provider_oversized_body_and_unknown_message(stack: Stack, http: httpx.AsyncClient) -> None:
    assert (await http.post("/webhooks/nope", content=b"{}")).status_code == 404
    big = b"x" * (300 * 1024)
    assert (await http.post("/webhooks/sandbox", content=big, headers=stack.signed_receipts(big))).status_code == 413
    body = json.dumps({"receipts": [{"message_id": "sbx_unknown", "status": "delivered"}]}).encode()
    resp = await http.post("/webhooks/sandbox", content=body, headers=stack.signed_receipts(body))
    assert resp.status_code == 200 and resp.json()["unknown"] == 1
    bad = b'{"receipts": "nope"}'
    assert (await http.post("/webhooks/sandbox", content=bad, headers=stack.signed_receipts(bad))).status_code == 400


async def test_receipt_for_an_ended_journey_is_recorded_late_with_200(
    env: WorkflowEnvironment, stack: Stack, http: httpx.AsyncClient
) -> None:
    async with stack.worker():
        workflow_id, body = await waiting_for_receipt(stack)
        await stack.journeys.client.get_workflow_handle(workflow_id).terminate("operator ended it")
        resp = await http.post("/webhooks/sandbox", content=body, headers=stack.signed_receipts(body))
    assert resp.status_code == 200 and resp.json()["late"] == 1
    log = {m.channel: m for m in await stack.store.messages()}
    assert log["alimtalk"].receipt_status == "delivered"


async def test_events_endpoint_needs_the_api_key(
    env: WorkflowEnvironment, stack: Stack, http: httpx.AsyncClient
) -> None:
    c = customer()
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        event = {"type": "order.cancelled", "order_id": o.order_id}
        assert (await http.post("/events", json=event)).status_code == 401
        assert (await http.post("/events", json=event, headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (
            await http.post("/events", json={**event, "order_id": "x' OR 1=1"}, headers=stack.api_auth())
        ).status_code == 422
        ok = await http.post("/events", json=event, headers=stack.api_auth())
        assert ok.status_code == 202 and ok.json() == {"delivered": 1, "outcome": "delivered"}
        result = await handle.result()
        missing = await http.post("/events", json={**event, "order_id": "never-paid"}, headers=stack.api_auth())
    assert result.outcome == "exited:order.cancelled"
    assert missing.status_code == 404


async def test_healthz(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}


async def test_reordered_receipts_keep_the_first_outcome(
    env: WorkflowEnvironment, stack: Stack, http: httpx.AsyncClient
) -> None:
    """A stale 'failed' receipt that arrives after 'delivered' changes nothing: no SMS fallback."""
    async with stack.worker():
        workflow_id, delivered = await waiting_for_receipt(stack)
        failed = json.loads(delivered)
        failed["receipts"][0].update(
            status="failed", error_code="KAKAO_DELIVERY_FAILED", occurred_at="2020-01-01T00:00:00+00:00"
        )
        stale = json.dumps(failed).encode()
        both = json.loads(delivered)
        both["receipts"] = [failed["receipts"][0], *both["receipts"]][::-1]  # delivered first, then failed
        batch = json.dumps(both).encode()
        resp = await http.post("/webhooks/sandbox", content=batch, headers=stack.signed_receipts(batch))
        again = await http.post("/webhooks/sandbox", content=stale, headers=stack.signed_receipts(stale))
        await env.sleep(timedelta(hours=1))
        timeline = await stack.journeys.timeline(workflow_id)
    assert resp.json()["received"] == 2 and resp.json()["duplicate"] == 1
    assert again.json()["duplicate"] == 1
    assert [(e.channel, e.outcome) for e in timeline if e.channel] == [
        (Channel.ALIMTALK, Outcome.SENT),
        (Channel.ALIMTALK, Outcome.DELIVERED),
    ]
    assert [m["channel"] for m in stack.sandbox.messages.values()] == ["alimtalk"]
    log = {m.channel: m for m in await stack.store.messages()}
    assert log["alimtalk"].receipt_status == "delivered"


async def test_receipts_recorded_while_temporal_is_unreachable_are_signalled_when_the_provider_retries(
    env: WorkflowEnvironment, stack: Stack, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """503 asks the provider to post the batch again; the retry reaches the journey, nothing is resent."""
    async with stack.worker():
        workflow_id, body = await waiting_for_receipt(stack)
        real = stack.journeys.client.get_workflow_handle

        class Unreachable:
            async def signal(self, *args: object, **kwargs: object) -> None:
                raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

        monkeypatch.setattr(stack.journeys.client, "get_workflow_handle", lambda *a, **k: Unreachable())
        refused = await http.post("/webhooks/sandbox", content=body, headers=stack.signed_receipts(body))
        monkeypatch.setattr(stack.journeys.client, "get_workflow_handle", real)
        [logged] = await stack.store.messages(workflow_id=workflow_id)
        retried = await http.post("/webhooks/sandbox", content=body, headers=stack.signed_receipts(body))
        await env.sleep(timedelta(hours=1))
        timeline = await stack.journeys.timeline(workflow_id)
    assert refused.status_code == 503
    assert logged.receipt_status == "delivered"  # recorded before the signal was tried
    assert retried.status_code == 200
    assert [retried.json()[k] for k in ("received", "signalled", "duplicate")] == [1, 1, 1]
    assert [(e.step, e.channel) for e in timeline if e.outcome is Outcome.DELIVERED] == [
        ("payment_complete", Channel.ALIMTALK)
    ]
    assert [m["channel"] for m in stack.sandbox.messages.values()] == ["alimtalk"]  # no SMS fallback
