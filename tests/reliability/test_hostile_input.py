"""Hostile and malformed input: always a clear 4xx or validation error, never a 500, nothing started."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.service import RPCError

from durable_journeys.activities import Channel, Template, TemplateRegistry
from durable_journeys.starter import InvalidInput
from durable_journeys.starter.stack import Stack
from tests.factories import customer

pytestmark = pytest.mark.reliability

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
order_like = st.fixed_dictionaries(
    {},
    optional={
        "order_id": st.text(max_size=70) | st.integers(),
        "customer_id": st.text(max_size=70),
        "amount": st.integers(min_value=-10, max_value=10**12) | st.text(max_size=5),
        "items": st.lists(
            st.dictionaries(st.sampled_from(["name", "unit_price", "quantity"]), json_values, max_size=3), max_size=3
        ),
    },
)
customer_like = st.fixed_dictionaries(
    {},
    optional={
        "customer_id": st.text(max_size=70),
        "phone": st.text(max_size=20),
        "email": st.text(max_size=30),
        "push_tokens": st.lists(st.text(max_size=10), max_size=2),
        "name": st.text(max_size=20),
    },
)


@FUZZ
@given(order=order_like, cust=customer_like)
async def test_fuzzed_order_paid_is_refused_cleanly_or_accepted(stack: Stack, order: Any, cust: Any) -> None:
    try:
        handle = await stack.journeys.order_paid(order, cust)
    except InvalidInput as exc:
        assert exc.problems and all(isinstance(p, str) for p in exc.problems)
        oid = order.get("order_id")
        if isinstance(oid, str) and oid:
            with pytest.raises(RPCError):  # nothing started for this order
                await stack.journeys.client.get_workflow_handle(f"post-purchase:{oid}").describe()
    else:
        await handle.terminate("fuzzing")


@FUZZ
@given(
    body=st.binary(max_size=2000),
    headers=st.dictionaries(
        st.sampled_from(["X-Sandbox-Timestamp", "X-Sandbox-Signature", "Content-Type"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
        max_size=3,
    ),
)
async def test_fuzzed_webhooks_never_500(stack: Stack, body: bytes, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://h") as http:
        resp = await http.post("/webhooks/sandbox", content=body, headers=headers)
    assert resp.status_code in (400, 401, 413, 422)


@FUZZ
@given(payload=json_values)
async def test_fuzzed_signed_webhook_bodies_never_500(stack: Stack, payload: Any) -> None:
    body = json.dumps(payload).encode()
    headers = stack.signed_receipts(body)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://h") as http:
        resp = await http.post("/webhooks/sandbox", content=body, headers=headers)
    assert resp.status_code in (200, 400)
    assert stack.sandbox.messages == {}


@FUZZ
@given(payload=json_values, key=st.sampled_from(["right", "wrong", ""]))
async def test_fuzzed_events_never_500(stack: Stack, payload: Any, key: str) -> None:
    auth = stack.api_auth() if key == "right" else {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://h") as http:
        resp = await http.post("/events", json=payload, headers=auth)
    assert resp.status_code in (202, 400, 401, 404, 422)


async def test_wrong_keys_are_refused_everywhere(stack: Stack) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://h") as http:
        for method, url in [("POST", "/events"), ("GET", "/inbox/c-1"), ("POST", "/inbox/c-1/1/read")]:
            resp = await http.request(
                method, url, json={"type": "app.opened", "customer_id": "c-1"}, headers={"Authorization": "Bearer nope"}
            )
            assert resp.status_code == 401, url
        assert (await http.post("/webhooks/other-provider", content=b"{}")).status_code == 404


def test_template_injection_is_inert() -> None:
    reg = TemplateRegistry([Template(code="t", texts={Channel.SMS: "#{customer_name}님 주문 #{order_id}"})])
    rendered = reg.render("t", Channel.SMS, {"customer_name": "#{order_id}{{7*7}}<script>", "order_id": "A-1"})
    assert rendered.body == "#{order_id}{{7*7}}<script>님 주문 A-1"  # values are never re-expanded


async def test_sql_metacharacters_in_names_and_ids_are_data(stack: Stack) -> None:
    hostile = "'; DROP TABLE message_log; --"
    c = customer(name=hostile)
    await stack.store.upsert_customer(c)
    stored = await stack.store.get_customer(c.customer_id)
    assert stored is not None and stored.name == hostile
    with pytest.raises(InvalidInput, match="customer_id"):
        await stack.journeys.cart_updated("c-1' OR '1'='1", {"items": [{"name": "x", "unit_price": 1}]})
    assert await stack.store.messages() == []  # the table is still there, and empty
