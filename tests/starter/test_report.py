"""journeys report: per journey, step and channel, counted exactly from a scripted message log."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from durable_journeys.activities.store import MessageStatus, Store
from durable_journeys.starter.report import build_report, journey_report, render
from tests.helpers import migrated_store
from tests.starter.test_cli import journeys

T = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
SINCE, UNTIL, WINDOW = T - timedelta(days=1), T + timedelta(days=8), timedelta(days=7)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with migrated_store(request.param, tmp_path) as s:
        yield s


async def message(
    store: Store,
    journey: str,
    workflow_id: str,
    step: str,
    channel: str,
    customer: str,
    at: datetime,
    *,
    status: MessageStatus = MessageStatus.ACCEPTED,
    receipt: str | None = "delivered",
    receipt_mode: str = "webhook",
    key: str | None = None,
    resend_of: str | None = None,
) -> str:
    key = key or f"{workflow_id}:{step}:{channel}"
    await store.claim_message(
        idempotency_key=key,
        workflow_id=workflow_id,
        step=step,
        channel=channel,
        customer_id=customer,
        provider="sandbox",
        purpose="informational",
        template=step,
        journey_time=at,
        journey=journey,
        resend_of=resend_of,
    )
    await store.finish_message(key, status, receipt_mode=receipt_mode, receipt_status=receipt)
    return key


async def skip(
    store: Store, workflow_id: str, step: str, channel: str, customer: str, status: str, reason: str
) -> None:
    await store.record_skip(
        status=status,
        reason=reason,
        idempotency_key=f"{workflow_id}:{step}:{channel}",
        workflow_id=workflow_id,
        journey="post-purchase",
        step=step,
        channel=channel,
        customer_id=customer,
        journey_time=T + timedelta(days=3),
    )


async def script(store: Store) -> None:
    """Six customers through the post-purchase and cart journeys (see the expected rows below)."""
    pp = "post-purchase"
    for n in (1, 2, 3):
        await store.record_order(f"c{n}", f"o{n}", T - timedelta(minutes=1))
    first = await message(store, pp, "post-purchase:o1", "payment_complete", "alimtalk", "c1", T)
    await message(
        store,
        pp,
        "post-purchase:o1",
        "payment_complete",
        "alimtalk",
        "c1",
        T + timedelta(hours=5),
        key="post-purchase:o1:payment_complete~resend1:alimtalk",
        resend_of=first,
    )
    # c2: AlimTalk refused, SMS delivers (a fallback)
    await message(
        store,
        pp,
        "post-purchase:o2",
        "payment_complete",
        "alimtalk",
        "c2",
        T + timedelta(hours=1),
        status=MessageStatus.REJECTED,
        receipt=None,
    )
    await message(store, pp, "post-purchase:o2", "payment_complete", "sms", "c2", T + timedelta(hours=1, seconds=5))
    # c3: AlimTalk's receipt says failed, the SMS fallback is still waiting for its receipt
    await message(
        store, pp, "post-purchase:o3", "payment_complete", "alimtalk", "c3", T + timedelta(hours=2), receipt="failed"
    )
    await message(
        store, pp, "post-purchase:o3", "payment_complete", "sms", "c3", T + timedelta(hours=2, minutes=10), receipt=None
    )
    # the sale: c1 gets it, clicks, and buys again the next day; the others are skipped or deferred
    await message(store, pp, "post-purchase:o1", "recent_buyer_sale", "sms", "c1", T + timedelta(days=3))
    await store.record_engagement("c1", "clicked", T + timedelta(days=3, hours=1), step="recent_buyer_sale")
    await store.record_order("c1", "o1b", T + timedelta(days=4))
    await skip(store, "post-purchase:o2", "recent_buyer_sale", "sms", "c2", "skipped", "no_marketing_consent")
    await skip(store, "post-purchase:o3", "recent_buyer_sale", "sms", "c3", "skipped", "frequency_cap")
    await skip(store, "post-purchase:o4", "recent_buyer_sale", "sms", "c4", "deferred", "frequency_cap")
    # the cart: c5's push (no receipts on push) is opened and converts; c6 buys 6 days after the
    # coupon (its last message: the coupon converts, not the push), 7 days and 6 hours after the push
    await message(
        store,
        "cart",
        "cart:c5",
        "cart_reminder",
        "push",
        "c5",
        T + timedelta(hours=5),
        receipt=None,
        receipt_mode="none",
    )
    await store.record_engagement("c5", "opened", T + timedelta(hours=5, minutes=10))
    await store.record_order("c5", "o5", T + timedelta(hours=6))
    await message(
        store,
        "cart",
        "cart:c6",
        "cart_reminder",
        "push",
        "c6",
        T + timedelta(hours=5),
        receipt=None,
        receipt_mode="none",
    )
    await store.record_order("c6", "o6", T + timedelta(days=7, hours=6))
    # c6's coupon: the first SMS provider handed it off, the second one sent it (one message)
    await message(
        store,
        "cart",
        "cart:c6",
        "cart_coupon",
        "sms",
        "c6",
        T + timedelta(days=1),
        status=MessageStatus.REJECTED,
        receipt=None,
    )
    await message(
        store, "cart", "cart:c6", "cart_coupon", "sms", "c6", T + timedelta(days=1), key="cart:c6:cart_coupon:sms~bizgo"
    )
    # outside the period: not counted
    await message(store, "cart", "cart:c7", "cart_reminder", "push", "c7", SINCE - timedelta(hours=1))


COLUMNS = ("sent", "delivered", "failed", "fallback", "opened", "clicked", "converted", "resent", "deferred")
EXPECTED = {
    ("post-purchase", "payment_complete", "alimtalk"): ((2, 1, 2, 0, 0, 0, 0, 1, 0), {}),
    ("post-purchase", "payment_complete", "sms"): ((2, 1, 0, 2, 0, 0, 0, 0, 0), {}),
    ("post-purchase", "recent_buyer_sale", "sms"): (
        (1, 1, 0, 0, 1, 1, 1, 0, 1),
        {"no_marketing_consent": 1, "frequency_cap": 1},
    ),
    ("cart", "cart_reminder", "push"): ((2, 2, 0, 0, 1, 0, 1, 0, 0), {}),
    ("cart", "cart_coupon", "sms"): ((1, 1, 0, 0, 0, 0, 1, 0, 0), {}),
}


async def test_every_count_of_a_scripted_log(store: Store) -> None:
    await script(store)
    report = await journey_report(store, since=SINCE, until=UNTIL, attribution=WINDOW)
    got = {(r.journey, r.step, r.channel): (tuple(getattr(r, c) for c in COLUMNS), r.skipped) for r in report.rows}
    assert got == EXPECTED
    only_cart = await journey_report(store, since=SINCE, until=UNTIL, attribution=WINDOW, journey="cart")
    assert {r.journey for r in only_cart.rows} == {"cart"}
    shorter = await journey_report(store, since=SINCE, until=UNTIL, attribution=timedelta(minutes=30))
    cart = next(r for r in shorter.rows if r.step == "cart_reminder")
    assert (cart.opened, cart.converted) == (1, 0)  # the order came an hour after the push


async def test_formats_carry_the_same_numbers(store: Store, tmp_path: Path) -> None:
    await script(store)
    report = await journey_report(store, since=SINCE, until=UNTIL, attribution=WINDOW)
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    sale = next(r for r in rows if r["step"] == "recent_buyer_sale")
    assert (sale["sent"], sale["converted"], sale["conversion"]) == ("1", "1", "1.0000")
    assert (sale["skipped_frequency_cap"], sale["skipped_no_marketing_consent"]) == ("1", "1")
    data = json.loads(render(report, "json"))
    pay = next(r for r in data["rows"] if r["step"] == "payment_complete" and r["channel"] == "sms")
    assert (pay["sent"], pay["fallback"], pay["conversion"]) == (2, 2, 0.0)
    table = render(report, "table")
    assert re.search(r"cart\s+cart_reminder\s+push\s+2\s+2\s+0\s+0\s+1\s+0\s+1\s+0\s+0\s+50.0%", table), table


async def test_the_html_page_is_self_contained_and_shows_the_numbers(store: Store) -> None:
    await script(store)
    page = render(await journey_report(store, since=SINCE, until=UNTIL, attribution=WINDOW), "html")
    assert "<script" not in page and not re.search(r"(src|href)=", page)  # nothing fetched, nothing run
    assert page.count("<svg") == 3  # a funnel per journey, the channels
    number = re.compile(r'data-step="([^"]+)" data-stage="([^"]+)">(\d+)<')
    funnel = {(step, stage): int(n) for step, stage, n in number.findall(page)}
    assert funnel[("payment_complete", "sent")] == 4 and funnel[("payment_complete", "delivered")] == 2
    assert funnel[("recent_buyer_sale", "converted")] == 1 and funnel[("cart_reminder", "opened")] == 1
    assert 'data-channel="push">2 / 2 delivered<' in page and 'data-channel="sms">3 / 4 delivered<' in page


def test_names_from_the_log_are_escaped_in_html_and_csv() -> None:
    from durable_journeys.activities.store import MessageRecord

    hostile = "<img src=x onerror=alert(1)>"
    m = MessageRecord(
        idempotency_key="w:s:sms",
        workflow_id="w",
        step=hostile,
        channel="sms",
        customer_id="c",
        provider="p",
        purpose="informational",
        template="t",
        status=MessageStatus.ACCEPTED,
        attempts=1,
        journey="=cmd()",
        created_at=T,
    )
    report = build_report([m], [], [], [], since=SINCE, until=UNTIL, attribution=WINDOW)
    assert hostile not in render(report, "html")
    assert "'=cmd()" in render(report, "csv")


def test_the_command_writes_the_report(tmp_path: Path) -> None:
    import asyncio

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    async def fill() -> None:
        s = Store.from_url(url)
        await s.migrate()
        await script(s)
        await s.close()

    asyncio.run(fill())
    env = {"JOURNEYS_DATABASE_URL": url}
    page = tmp_path / "r.html"
    args = ["--since", "2026-11-01", "--until", "2026-11-10T10:00"]
    done = journeys("report", *args, "--format", "html", "-o", str(page), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {page} (5 rows)") and "<svg" in page.read_text()
    as_json = journeys("report", *args, "--format", "json", "--journey", "cart", env=env)
    assert [r["step"] for r in json.loads(as_json.stdout)["rows"]] == ["cart_reminder", "cart_coupon"]
    bad = journeys("report", "--since", "last tuesday", env=env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--since" in bad.stderr
