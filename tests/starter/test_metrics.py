"""Prometheus metrics: scraped from /metrics after journeys ran; the SDK's own runtime metrics too."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.activities.metrics import serve_metrics
from durable_journeys.starter.connect import connect_client
from durable_journeys.starter.report import journey_report
from durable_journeys.starter.serve import free_port
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.testing import Recipients, journey_kit
from tests import factories

Sample = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Sample:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def delta(after: Sample, before: Sample, name: str, **labels: str) -> float:
    """How much the samples of ``name`` matching ``labels`` grew (summed over other labels)."""

    def total(sample: Mapping[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
        return sum(v for (n, ls), v in sample.items() if n == name and set(labels.items()) <= ls)

    return total(after) - total(before)


async def test_counters_after_journeys_with_a_fallback_a_skip_an_exit_and_receipts(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    port = serve_metrics(0)
    before = await scrape(port)
    consented = factories.clock - timedelta(days=30)
    # AlimTalk refused (not on KakaoTalk): every informational step falls back to SMS.
    c = factories.customer(Recipients.NOT_ON_KAKAO, marketing_consent={})  # no ad consent: the sale is skipped
    o = factories.order(c)
    shopper = factories.customer(app_installed=True, push_tokens=["t"], marketing_consent={Channel.PUSH: consented})
    async with journey_kit(env, tmp_path / "m.db") as kit:
        async with kit.worker():
            start = await kit.now()  # the report's window opens here (the shared clock may have moved far)
            handle = await kit.journeys.order_paid(o, c, settings={"review_hours_kst": None})
            await kit.journeys.cart_updated(
                shopper.customer_id, {"items": [{"name": "양말", "unit_price": 5000}]}, customer=shopper
            )
            await kit.journeys.order_shipped(o.order_id)
            await kit.advance(timedelta(hours=2))  # the cart's reminder push went out
            await kit.journeys.purchase(shopper.customer_id)  # the cart journey exits
            cart = await kit.journeys.client.get_workflow_handle(f"cart:{shopper.customer_id}").result()
            await kit.journeys.order_delivered(o.order_id)
            await handle.result()
            now = await kit.now()
            report = await journey_report(
                kit.stack.store,
                since=start - timedelta(minutes=1),
                until=now + timedelta(days=1),
                attribution=timedelta(days=7),
            )
    after = await scrape(port)
    assert cart["outcome"] == "exited:purchase"
    # The report of the same journeys, from the message log (journey time).
    rows = {(r.journey, r.step, r.channel): r for r in report.rows}
    for step in ("payment_complete", "shipping_started", "review_request"):
        kakao, sms = rows[("post-purchase", step, "alimtalk")], rows[("post-purchase", step, "sms")]
        assert (kakao.sent, kakao.failed, sms.sent, sms.delivered, sms.fallback) == (0, 1, 1, 1, 1), step
    assert rows[("post-purchase", "recent_buyer_sale", "sms")].skipped == {"no_marketing_consent": 1}
    assert rows[("cart", "cart_reminder", "push")].sent == 1
    pp = {"journey": "post-purchase"}
    assert delta(after, before, "journeys_journeys_total", event="started", **pp) == 1
    assert delta(after, before, "journeys_journeys_total", event="completed", **pp) == 1
    assert delta(after, before, "journeys_journeys_total", event="started", journey="cart") == 1
    assert delta(after, before, "journeys_journeys_total", event="exited", journey="cart") == 1
    for step in ("payment_complete", "shipping_started", "review_request"):
        rejected = delta(after, before, "journeys_sends_total", step=step, channel="alimtalk", outcome="rejected", **pp)
        accepted = delta(after, before, "journeys_sends_total", step=step, channel="sms", outcome="accepted", **pp)
        assert (rejected, accepted) == (1, 1), step
        assert delta(after, before, "journeys_fallbacks_total", step=step, channel="sms", **pp) == 1
    assert delta(after, before, "journeys_skipped_total", channel="sms", reason="no_marketing_consent", **pp) == 1
    assert (
        delta(
            after,
            before,
            "journeys_sends_total",
            journey="cart",
            step="cart_reminder",
            channel="push",
            outcome="accepted",
        )
        == 1
    )
    # Receipts: three SMS of the order came back delivered through the webhook app.
    assert delta(after, before, "journeys_receipt_latency_seconds_count", channel="sms", status="delivered") == 3
    assert (
        delta(after, before, "journeys_webhook_requests_total", route="webhooks", provider="sandbox", status="200") >= 3
    )
    assert delta(after, before, "journeys_webhook_requests_total", provider="nobody") == 0


async def test_the_sdk_runtime_metrics_are_served_on_their_port(env: WorkflowEnvironment) -> None:
    port = free_port()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        temporal_address=env.client.service_client.config.target_host,
        temporal_metrics_port=port,
    )
    client: Client = await connect_client(settings)
    with pytest.raises(RPCError):  # one RPC the runtime counts
        await client.get_workflow_handle(f"no-such-{port}").describe()
    sample = await scrape(port)
    assert any(name.startswith("temporal_request") for name, _ in sample), sorted({n for n, _ in sample})[:20]
