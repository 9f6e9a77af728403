"""Links a caller passes into messages go out only as https URLs on the shop's own hosts (JOURNEYS_LINK_HOSTS)."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment

from durable_journeys.starter.errors import InvalidInput
from durable_journeys.starter.inputs import link_problem
from durable_journeys.starter.stack import Stack
from tests.factories import customer, order

HOSTS = ("shop.example", ".cdn.shop.example")
ITEMS = [{"name": "무선 이어폰", "unit_price": 39000}]


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/cart",
        "https://SHOP.example/cart?x=1#top",
        "https://shop.example./cart",
        "https://shop.example:443/cart",
        "https://img.cdn.shop.example/a.png",
        "https://a.b.cdn.shop.example/a.png",
        "https://cdn.shop.example/x",  # ".cdn.shop.example": the host and its subdomains
    ],
)
def test_https_links_on_the_shop_s_hosts_pass(url: str) -> None:
    assert link_problem(url, HOSTS) is None


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript://shop.example/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://shop.example/cart",
        "//shop.example/cart",
        "shop.example/cart",
        "ftp://shop.example/cart",
        "https://evil.example/cart",
        "https://shop.example.evil.example/cart",
        "https://evilshop.example/cart",
        "https://cdn.shop.example.evil/x",
        "https://shop.example@evil.example/cart",
        "https://user:pw@shop.example/cart",
        "https://shop.example:8443/cart",
        "https://shop.example:notaport/cart",
        "https://[::1]/cart",
        "",
    ],
)
def test_other_links_are_refused(url: str) -> None:
    assert link_problem(url, HOSTS) is not None


@settings(max_examples=200, deadline=None)
@given(
    host=st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}\.){1,3}[a-z]{2,6}", fullmatch=True),
    path=st.text(alphabet="abc/=&%-_.~", max_size=30),
    scheme=st.sampled_from(["https", "http", "javascript", "data", "ftp"]),
)
def test_no_host_but_the_listed_ones_passes(host: str, path: str, scheme: str) -> None:
    allowed = host in ("shop.example", "cdn.shop.example") or host.endswith(".cdn.shop.example")
    assert (link_problem(f"{scheme}://{host}/{path}", HOSTS) is None) == (allowed and scheme == "https")


@pytest.mark.parametrize("url", ["javascript:alert(document.cookie)", "https://phish.example/login"])
async def test_the_facade_refuses_a_cart_with_a_foreign_link_before_anything_starts(
    env: WorkflowEnvironment, stack: Stack, url: str
) -> None:
    c = customer()
    with pytest.raises(InvalidInput, match=r"^invalid cart: url: "):
        await stack.journeys.cart_updated(c.customer_id, {"items": ITEMS, "url": url}, customer=c)
    with pytest.raises(InvalidInput, match=r"^invalid settings: review_url: "):
        await stack.journeys.order_paid(order(c), c, settings={"review_url": url})
    assert await stack.store.messages(customer_id=c.customer_id) == []


async def test_events_refuses_a_cart_with_a_foreign_link(stack: Stack) -> None:
    c = customer()
    await stack.journeys.save_profile(c)
    event = {
        "type": "cart.updated",
        "customer_id": c.customer_id,
        "data": {"cart": {"items": ITEMS, "url": "javascript:alert(1)"}},
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://h") as http:
        resp = await http.post("/events", json=event, headers=stack.api_auth())
    assert resp.status_code == 422 and "url: must be an https URL" in resp.json()["detail"]


async def test_a_listed_host_goes_out_in_the_message(env: WorkflowEnvironment, stack: Stack) -> None:
    from datetime import timedelta

    from durable_journeys.activities import Channel
    from tests import factories

    consented = factories.clock - timedelta(days=30)
    c = customer(push_tokens=["t-1"], marketing_consent={Channel.PUSH: consented, Channel.EMAIL: consented})
    stack.journeys.link_hosts = ("m.myshop.kr",)
    async with stack.worker():
        await stack.journeys.cart_updated(
            c.customer_id, {"items": ITEMS, "url": "https://m.myshop.kr/cart/7"}, customer=c
        )
        await env.sleep(timedelta(hours=27))  # the push, then the coupon a day later (by e-mail)
    [coupon] = [m for m in stack.sandbox.messages.values() if m["channel"] == "email"]
    assert "https://m.myshop.kr/cart/7" in coupon["body"]
