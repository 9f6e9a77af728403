"""Every input is bounded, and no input can wedge a journey (docs/architecture.md §8a)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import text
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import EDGE, Channel, CustomerProfile
from durable_journeys.providers import ProviderRegistry
from durable_journeys.providers.sandbox import SandboxProvider
from durable_journeys.providers.signing import sign
from durable_journeys.starter import InvalidInput
from durable_journeys.starter.stack import Stack
from durable_journeys.starter.webhooks import create_webhook_app
from durable_journeys.workflows import EventType, JourneyEvent, Outcome, care_id, cart_id
from tests import factories
from tests.factories import customer, order
from tests.helpers import alimtalk_waiting_for_receipt

pytestmark = pytest.mark.reliability

CART = {"items": [{"name": "무선 이어폰", "unit_price": 39000}]}
CONTROL = ["\x00", "\n", "\r", "\x1b", "\x7f", "\ud800"]


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://h") as c:
        yield c


def shopper() -> Any:
    consented = factories.clock - timedelta(days=30)
    return customer(
        push_tokens=["device-token-1"],
        app_installed=True,
        marketing_consent=dict.fromkeys((Channel.PUSH, Channel.BRAND_MESSAGE, Channel.SMS), consented),
    )


def signals(history: Any) -> int:
    """How many event signals (named ``event`` or after their type) reached the journey's history."""
    return sum(
        e.event_type == HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and not e.workflow_execution_signaled_event_attributes.signal_name.startswith("receipt")
        for e in history.events
    )


async def poke_with_malformed_events(
    stack: Stack, http: httpx.AsyncClient, workflow_id: str, customer_id: str, order_id: str
) -> None:
    """Every event type with data that does not fit it, through /events and emit(); then, bypassing
    every check, unreadable payloads straight to the journey. The journey must still answer."""
    handle = stack.journeys.client.get_workflow_handle(workflow_id)
    for event_type in EventType:
        target = {"order_id": order_id} if event_type.value.startswith("order.") else {"customer_id": customer_id}
        for data in ({"unexpected": "x"}, {"cart": {"items": []}}, {"cart": "nope"}):
            resp = await http.post(
                "/events", json={"type": event_type.value, "data": data, **target}, headers=stack.api_auth()
            )
            assert resp.status_code == 422, (event_type, data, resp.text)
            assert len(resp.text) < 500 and "Traceback" not in resp.text
            with pytest.raises(InvalidInput):
                await stack.journeys.emit(customer_id, {"type": event_type.value, "data": data})
    await handle.signal("event", {"type": "cart.updated", "event_id": "bad-1", "data": {"cart": {"items": []}}})
    await handle.signal("event", {"type": "cart.updated", "data": {"cart": "nope"}})
    await handle.signal("event", {"type": "no.such.event"})  # cannot even be decoded: recorded as ignored
    await handle.signal("event", {"type": "app.opened", "data": {"x": "y" * 70_000}})  # another client's: loads
    # Under the readable names (a dynamic handler): unreadable payloads are recorded as ignored.
    await handle.signal("order.shipped", {"type": "no.such.event"})
    await handle.signal("order.shipped", "not an event")
    await handle.signal("order.shipped", args=[1, 2])
    await handle.signal("receipt sms delivered", {"status": "eaten"})
    await handle.signal("x" * 5000, {"type": "app.opened"})  # a label, not a command: heard as an event
    await stack.journeys.timeline(workflow_id)  # still answers queries


async def test_malformed_events_never_wedge_the_post_purchase_journey(
    env: WorkflowEnvironment, stack: Stack, http: httpx.AsyncClient
) -> None:
    c = customer()
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        await poke_with_malformed_events(stack, http, handle.id, c.customer_id, o.order_id)
        await stack.journeys.order_shipped(o.order_id)
        await stack.journeys.order_delivered(o.order_id)
        result = await handle.result()
    assert result.outcome == "completed"
    assert [e.step for e in result.timeline if e.outcome is Outcome.DELIVERED] == [
        "payment_complete",
        "shipping_started",
        "review_request",
        "recent_buyer_sale",
    ]


async def test_malformed_events_never_wedge_the_cart_journey(
    env: WorkflowEnvironment, stack: Stack, http: httpx.AsyncClient
) -> None:
    c = shopper()
    async with stack.worker():
        handle = await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
        await poke_with_malformed_events(stack, http, handle.id, c.customer_id, "o-none")
        # The same event id as the unreadable one above: it was not taken, so this one counts.
        await stack.journeys.cart_updated(
            c.customer_id, {"items": [{"name": "충전기", "unit_price": 15000}]}, event_id="bad-1"
        )
        result = await handle.result()
    assert result.outcome == "completed"
    ignored = [e for e in result.timeline if e.outcome is Outcome.IGNORED]
    assert [(e.step, e.detail) for e in ignored] == [
        ("cart.updated", "unreadable data (ValidationError)"),
        ("cart.updated", "unreadable data (ValidationError)"),
        ("event", "unreadable signal (ValidationError)"),
        ("order.shipped", "unreadable signal (ValidationError)"),
        ("order.shipped", "unreadable signal (ValidationError)"),
        ("order.shipped", "unreadable signal (ValueError)"),
        ("receipt sms delivered", "unreadable signal (ValidationError)"),
    ]
    push = next(m for m in stack.sandbox.messages.values() if m["channel"] == "push")
    assert "충전기" in push["body"]
    assert {m["custom_fields"]["step"] for m in stack.sandbox.messages.values()} == {"cart_reminder", "cart_coupon"}


async def test_a_cart_journey_started_with_an_unreadable_cart_ends_without_sending(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    from durable_journeys.workflows import CartAbandonmentJourney, CartInput

    c = shopper()
    await stack.store.upsert_customer(c)
    async with stack.worker():
        handle = await stack.journeys.client.start_workflow(
            CartAbandonmentJourney.run,
            CartInput(customer_id=c.customer_id),
            id=cart_id(c.customer_id),
            task_queue=stack.task_queue,
            start_signal="event",
            start_signal_args=[{"type": "cart.updated", "data": {"cart": {"items": []}}}],
        )
        result = await handle.result()
    assert result.outcome == "no_cart"
    assert stack.sandbox.messages == {}


@pytest.fixture
def with_care(stack: Stack) -> Stack:
    """The stack, with care journeys started by first orders (the conftest default is off)."""
    stack.journeys.care_segment = "first_order"
    return stack


async def test_malformed_events_never_wedge_the_care_journey(
    env: WorkflowEnvironment, with_care: Stack, http: httpx.AsyncClient
) -> None:
    stack = with_care
    c = customer(app_installed=True, push_tokens=["device-token-1"])
    o = order(c)
    async with stack.worker():
        await stack.journeys.order_paid(o, c)
        await poke_with_malformed_events(stack, http, care_id(c.customer_id, o.order_id), c.customer_id, o.order_id)
        await env.sleep(timedelta(days=15))
        care = stack.journeys.client.get_workflow_handle(care_id(c.customer_id, o.order_id))
        status = (await care.describe()).status
        timeline = await stack.journeys.timeline(care.id)
    assert status is WorkflowExecutionStatus.COMPLETED
    assert [e.step for e in timeline if e.outcome is Outcome.DELIVERED] == [
        "care_welcome",
        "care_recommendation",
        "care_tier_regular",
    ]


async def test_redelivered_events_are_dropped_before_they_reach_history(
    env: WorkflowEnvironment, with_care: Stack, http: httpx.AsyncClient
) -> None:
    stack = with_care
    c = customer(app_installed=True, push_tokens=["device-token-1"])
    o = order(c)
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c)
        before = signals(await handle.fetch_history())
        for _ in range(5):
            assert (
                await http.post(
                    "/events", json={"type": "order.shipped", "order_id": o.order_id}, headers=stack.api_auth()
                )
            ).status_code == 202
            await stack.journeys.order_shipped(o.order_id)
            await stack.journeys.emit(c.customer_id, {"type": "app.opened", "event_id": "open-1"})
        care = stack.journeys.client.get_workflow_handle(care_id(c.customer_id, o.order_id))
        assert signals(await handle.fetch_history()) == before + 1
        assert signals(await care.fetch_history()) == 1


@pytest.mark.parametrize("char", CONTROL, ids=repr)
@pytest.mark.parametrize("where", ["name", "tier", "item", "cart_url", "push_token"])
async def test_control_characters_are_refused_before_anything_is_stored(stack: Stack, char: str, where: str) -> None:
    c = customer().model_dump()
    o: dict[str, Any] = order(customer()).model_dump() | {"customer_id": c["customer_id"]}
    if where in ("name", "tier"):
        c[where] = f"김{char}하늘"
    elif where == "push_token":
        c["push_tokens"] = [f"tok{char}en"]
    elif where == "item":
        o["items"] = [{"name": f"양말{char}", "unit_price": 1000}]
    with pytest.raises(InvalidInput):
        if where == "cart_url":
            await stack.journeys.cart_updated(c["customer_id"], {**CART, "url": f"https://x{char}y"}, customer=c)
        else:
            await stack.journeys.order_paid(o, c)
    assert await stack.store.get_customer(c["customer_id"]) is None or where == "cart_url"
    async with stack.store.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM orders"))).scalar() == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount": 10**5000},
        {"amount": 10**13},
        {"items": [{"name": "양말", "unit_price": 1}] * 9000},
        {"items": [{"name": "양말", "unit_price": 10**13}]},
        {"items": [{"name": "양말", "unit_price": 1, "quantity": 10**9}]},
    ],
    ids=["huge-amount", "amount-over-limit", "9000-items", "huge-price", "huge-quantity"],
)
async def test_oversized_orders_are_refused_before_anything_is_written(stack: Stack, overrides: dict[str, Any]) -> None:
    c = customer()
    o = order(c).model_dump() | overrides
    with pytest.raises(InvalidInput) as err:
        await stack.journeys.order_paid(o, c)
    assert len(str(err.value)) < 1500
    async with stack.store.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM orders"))).scalar() == 0
    assert await stack.store.get_customer(c.customer_id) is None


def test_new_event_data_is_capped_in_size_and_depth_and_history_still_loads() -> None:
    deep: Any = "x"
    for _ in range(20):
        deep = {"a": deep}
    for data in ({"x": "y" * 70_000}, deep, {"x": "a\x00b"}):
        event = {"type": "app.opened", "event_id": "e\n1", "data": data}
        with pytest.raises(ValidationError):
            JourneyEvent.model_validate(event, context=EDGE)
        # What older code let into history still loads: a replay must not fail a running journey.
        assert JourneyEvent.model_validate(event).data == data


def test_stored_profiles_and_orders_older_code_accepted_still_load() -> None:
    from durable_journeys.workflows import Order

    profile = customer().model_dump() | {"name": "김\n하늘", "tier": "vip\x00"}
    with pytest.raises(ValidationError):
        CustomerProfile.model_validate(profile, context=EDGE)
    assert CustomerProfile.model_validate(profile).name == "김\n하늘"
    old = order(customer()).model_dump() | {"items": [{"name": "양말\n2켤레", "unit_price": 1}] * 150}
    assert len(Order.model_validate(old).items) == 150


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (json.dumps({"type": "app.opened", "customer_id": "c-1", "data": {"x": "y" * 3 * 1024 * 1024}}).encode(), 413),
        (b'{"type": "app.opened", "customer_id": "c-1", "data": ' + b'{"a": ' * 300 + b"1" + b"}" * 301, 400),
        (b"[" * 300_000 + b"]" * 300_000, 413),
        (b"[" * 50_000 + b"]" * 50_000, 400),
        (b'{"type": "app.opened", "customer_id": "c-1", "data": {"n": ' + b"9" * 5000 + b"}}", 400),
        (
            b'{"type": "cart.updated", "customer_id": "c-1", "data": {"cart": {"items": [{"name": "\\ud83d\\ude00", '
            b'"unit_price": 1}]}}}',
            422,
        ),
        (b"\xff\xfe not json", 400),
    ],
    ids=["3MiB-data", "300-deep", "too-big-brackets", "recursion", "5000-digit-int", "emoji-in-cart", "not-utf8"],
)
async def test_hostile_event_bodies_get_a_short_4xx(
    stack: Stack, http: httpx.AsyncClient, body: bytes, status: int
) -> None:
    await stack.store.upsert_customer(customer(customer_id="c-1"))
    resp = await http.post("/events", content=body, headers={**stack.api_auth(), "Content-Type": "application/json"})
    assert resp.status_code == status, resp.text
    assert len(resp.text) < 500
    assert stack.sandbox.messages == {}


async def test_events_are_authenticated_before_the_body_is_read(stack: Stack, http: httpx.AsyncClient) -> None:
    read: list[int] = []

    async def forty_mebibytes() -> AsyncIterator[bytes]:
        for _ in range(40):
            read.append(1)
            yield b" " * (1024 * 1024)

    resp = await http.post("/events", content=forty_mebibytes(), headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert len(read) <= 2  # the transport may hand over a chunk before the answer; the app reads none
    resp = await http.post("/events", content=forty_mebibytes(), headers=stack.api_auth())
    assert resp.status_code == 413


@pytest.mark.parametrize("message_id", [2**31, 2**63, -1, 0])
async def test_inbox_ids_out_of_range_are_a_422(stack: Stack, http: httpx.AsyncClient, message_id: int) -> None:
    resp = await http.post(f"/inbox/c-1/{message_id}/read", headers=stack.inbox_auth("c-1"))
    assert resp.status_code == 422 and len(resp.text) < 300


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(signature=st.binary(min_size=1, max_size=200), timestamp=st.binary(max_size=20))
async def test_any_signature_header_bytes_get_401_not_500(stack: Stack, signature: bytes, timestamp: bytes) -> None:
    body = b'{"receipts": []}'
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://h") as http:
        resp = await http.post(
            "/webhooks/sandbox",
            content=body,
            headers=[(b"X-Sandbox-Signature", signature), (b"X-Sandbox-Timestamp", timestamp)],
        )
    assert resp.status_code == 401


# -- receipts ------------------------------------------------------------------------------------


async def settled(stack: Stack, workflow_id: str) -> None:
    """Wait until the journey took the receipt and waits for shipping: no send in flight when the
    worker stops (a worker stopped as an activity is scheduled can stall the test server)."""
    for _ in range(500):
        if any(e.outcome is Outcome.DELIVERED for e in await stack.journeys.timeline(workflow_id)):
            return
    raise AssertionError("the journey never took the receipt")


def batch(*receipts: dict[str, Any]) -> bytes:
    return json.dumps({"receipts": list(receipts)}).encode()


@asynccontextmanager
async def receipt_poster(env: WorkflowEnvironment, stack: Stack, app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A worker and a client for ``app`` (time stands still: nothing here awaits a result)."""
    async with stack.worker(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as c:
        yield c


async def test_a_receipt_from_another_provider_settles_nothing(env: WorkflowEnvironment, stack: Stack) -> None:
    secret = "other-secret-of-32-bytes-or-more!!"
    other = SandboxProvider(httpx.AsyncClient(), api_key="x", webhook_secret=secret, name="other")
    registry = ProviderRegistry(
        {"sandbox": stack.providers.get("sandbox"), "other": other},
        routes={Channel.WEB_PUSH: "other"},  # routed: its webhook is served
        default="sandbox",
    )
    app = create_webhook_app(stack.journeys, registry, api_key="k" * 40, inbox_token_secret="k" * 40)
    async with receipt_poster(env, stack, app) as http:
        workflow_id, message = await alimtalk_waiting_for_receipt(stack)
        forged = batch(
            {
                "message_id": message["id"],
                "reference": message["reference"],
                "status": "failed",
                "error_code": "KAKAO_DELIVERY_FAILED",
            }
        )
        ts = int(time.time())
        resp = await http.post(
            "/webhooks/other",
            content=forged,
            headers={"X-Sandbox-Timestamp": str(ts), "X-Sandbox-Signature": sign(secret, ts, forged)},
        )
        wrong_id = batch(
            {
                "message_id": "sbx_not_this_one",
                "reference": message["reference"],
                "status": "failed",
                "error_code": "KAKAO_DELIVERY_FAILED",
            }
        )
        resp2 = await http.post("/webhooks/sandbox", content=wrong_id, headers=stack.signed_receipts(wrong_id))
        [logged] = [m for m in await stack.store.messages(workflow_id=workflow_id) if m.channel == "alimtalk"]
        timeline = await stack.journeys.timeline(workflow_id)
    assert resp.status_code == 200 and resp.json()["unknown"] == 1 and resp.json()["signalled"] == 0
    assert resp2.status_code == 200 and resp2.json()["unknown"] == 1
    assert logged.receipt_status is None
    assert [e.outcome for e in timeline if e.channel] == [Outcome.SENT]  # no fallback was triggered


@pytest.mark.parametrize(
    "bad",
    [
        {"error_code": "E" * 101},
        {"message_id": "m" * 201},
        {"reference": "r" * 301},
        {"status": "lost"},
        {"error_code": "bad\x00code"},
        {"message_id": None},
    ],
    ids=["long-error-code", "long-message-id", "long-reference", "unknown-status", "nul", "no-message-id"],
)
async def test_one_bad_receipt_does_not_fail_the_batch(
    env: WorkflowEnvironment, stack: Stack, bad: dict[str, Any]
) -> None:
    async with receipt_poster(env, stack, stack.webhook_app) as http:
        workflow_id, message = await alimtalk_waiting_for_receipt(stack)
        good = {"message_id": message["id"], "reference": message["reference"], "status": "delivered"}
        body = batch({**good, "status": "failed", **bad}, good)
        resp = await http.post("/webhooks/sandbox", content=body, headers=stack.signed_receipts(body))
        [logged] = [m for m in await stack.store.messages(workflow_id=workflow_id) if m.channel == "alimtalk"]
        await settled(stack, workflow_id)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["invalid"] == 1 and answer["signalled"] == 1
    assert answer["items"][0].startswith("invalid: ") and answer["items"][1] == "signalled"
    assert logged.receipt_status == "delivered"


async def test_a_stalled_body_times_out(stack: Stack, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from durable_journeys.starter import http_edge

    monkeypatch.setattr(http_edge, "BODY_TIMEOUT_SECONDS", 0.3)

    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"type": "app.opened",'
        await asyncio.sleep(30)
        yield b"}"

    resp = await asyncio.wait_for(http.post("/events", content=stalls(), headers=stack.api_auth()), timeout=10)
    assert resp.status_code == 408


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/{order_id.__class__.__mro__}",
        "https://shop.example/{0}",
        "https://shop.example/{nope}",
    ],
)
async def test_caller_urls_are_not_format_strings(env: WorkflowEnvironment, stack: Stack, url: str) -> None:
    c = customer()
    o = order(c)
    settings = {"review_url": url, "review_hours_kst": None}
    async with stack.worker():
        handle = await stack.journeys.order_paid(o, c, settings=settings)
        await stack.journeys.order_shipped(o.order_id)
        await stack.journeys.order_delivered(o.order_id)
        result = await handle.result()
    review = next(m for m in stack.sandbox.messages.values() if m["custom_fields"]["step"] == "review_request")
    assert result.outcome == "completed"
    assert url.replace("{order_id}", o.order_id) in review["body"] and "class" not in review["body"].replace(url, "")


@pytest.mark.parametrize(
    "settings",
    [
        {"give_up_after": "P100000D"},
        {"receipt_timeout": "P99999999D"},
        {"send_deadline": "P4000D"},
        {"review_url": "https://x/" + "a" * 600},
        {"sale_url": "https://x/\nInjected: header"},
    ],
    ids=["give-up", "receipt-timeout", "deadline", "long-url", "newline-url"],
)
async def test_journey_settings_a_timer_cannot_hold_are_refused(stack: Stack, settings: dict[str, Any]) -> None:
    c = customer()
    with pytest.raises(InvalidInput):
        await stack.journeys.order_paid(order(c), c, settings=settings)
    assert await stack.store.get_customer(c.customer_id) is None


@pytest.mark.parametrize("failure", ["temporal", "database"])
async def test_an_unreachable_dependency_is_a_503_not_a_500(
    stack: Stack, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    from sqlalchemy.exc import OperationalError
    from temporalio.service import RPCError, RPCStatusCode

    c = customer(app_installed=True)
    await stack.store.upsert_customer(c)

    async def down(*args: Any, **kwargs: Any) -> Any:
        if failure == "temporal":
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
        raise OperationalError("SELECT", {"name": "김하늘"}, ConnectionRefusedError("db down"))

    if failure == "temporal":
        monkeypatch.setattr(stack.journeys, "_signal_if_running", down)
    else:
        monkeypatch.setattr(stack.store, "inbox", down)
        monkeypatch.setattr(stack.store, "admit_event", down)
    event = await http.post("/events", json={"type": "order.shipped", "order_id": "o-1"}, headers=stack.api_auth())
    assert event.status_code == 503 and "김하늘" not in event.text
    if failure == "database":
        inbox = await http.get(f"/inbox/{c.customer_id}", headers=stack.inbox_auth(c.customer_id))
        assert inbox.status_code == 503
