"""A rule about the customer ends a step; a rule about one channel moves it to the next channel.

README "Contact policy" tables every reason; ``CUSTOMER_SKIPS`` and ``CHANNEL_SKIPS`` are that table.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import CHANNEL_SKIPS, CUSTOMER_SKIPS, Channel
from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import JourneyResult, Outcome
from tests import factories
from tests.factories import customer

ROOT = Path(__file__).resolve().parents[2]
CART = {"items": [{"name": "무선 이어폰", "unit_price": 39000}]}
BROWSER = '{"endpoint": "https://fcm.googleapis.com/fcm/send/abc", "keys": {"p256dh": "k", "auth": "a"}}'


def reasons_in_code() -> set[str]:
    """Every skip reason the send activity, the policy and the store can give (read from their source)."""
    found: set[str] = set()
    paths = [
        ROOT / "activities/send.py",
        ROOT / "activities/policy.py",
        *sorted((ROOT / "activities/store").glob("*.py")),
    ]
    for path in paths:
        for line in path.read_text().splitlines():
            if re.search(r"not_sent\(|ContactRefused\(|Decision\(allowed=False|UNKNOWN_CUSTOMER = ", line):
                found |= set(re.findall(r'"([a-z_]+)"', line))
    return found - {"status"}


def test_every_skip_reason_is_either_about_the_customer_or_about_one_channel() -> None:
    assert not CUSTOMER_SKIPS & CHANNEL_SKIPS
    assert reasons_in_code() <= CUSTOMER_SKIPS | CHANNEL_SKIPS | {"quiet_hours"}  # quiet hours defer, never skip
    readme = (ROOT / "README.md").read_text()
    for reason in CUSTOMER_SKIPS | CHANNEL_SKIPS:
        assert f"| `{reason}` |" in readme, reason  # one table in README names each


def shopper(**overrides: Any) -> Any:
    consented = factories.clock - timedelta(days=30)
    consent = {c: consented for c in (Channel.PUSH, Channel.WEB_PUSH, Channel.BRAND_MESSAGE, Channel.EMAIL)}
    return customer(
        **{"push_tokens": ["device-token-1", BROWSER], "app_installed": True, "marketing_consent": consent, **overrides}
    )


async def cart_journey(env: WorkflowEnvironment, stack: Stack, c: Any) -> JourneyResult:
    async with stack.worker():
        handle = await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
        result: JourneyResult = await handle.result()
    return result


def tried(result: JourneyResult) -> list[tuple[str, Channel | None, Outcome, str | None]]:
    return [(e.step, e.channel, e.outcome, e.detail) for e in result.timeline if e.channel is not None]


async def test_an_unsubscribed_customer_s_steps_end_at_their_first_channel(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    result = await cart_journey(env, stack, shopper(unsubscribed=True))
    assert tried(result) == [
        ("cart_reminder", Channel.PUSH, Outcome.SKIPPED, "unsubscribed"),
        ("cart_coupon", Channel.BRAND_MESSAGE, Outcome.SKIPPED, "unsubscribed"),
    ]
    ended = [e.detail for e in result.timeline if e.outcome is Outcome.NOT_DELIVERED]
    assert ended == ["unsubscribed holds on every channel; none other tried"] * 2
    assert stack.sandbox.messages == {}


@pytest.mark.parametrize(
    ("consent_age", "overrides", "reason"),
    [
        ({Channel.WEB_PUSH: 30}, {}, "no_marketing_consent"),
        ({Channel.PUSH: 800, Channel.WEB_PUSH: 30}, {}, "marketing_consent_expired"),
        (None, {"push_tokens": [BROWSER], "app_installed": False}, "no_address"),
    ],
)
async def test_a_rule_about_the_push_channel_moves_the_reminder_to_web_push(
    env: WorkflowEnvironment,
    stack: Stack,
    consent_age: dict[Channel, int] | None,
    overrides: dict[str, Any],
    reason: str,
) -> None:
    if consent_age is not None:  # days before the test server's clock (earlier tests moved it)
        overrides = {"marketing_consent": {ch: factories.clock - timedelta(days=d) for ch, d in consent_age.items()}}
    c = shopper(**overrides)
    async with stack.worker():
        handle = await stack.journeys.cart_updated(c.customer_id, CART, customer=c)
        await env.sleep(timedelta(hours=2))
        timeline = await stack.journeys.timeline(f"cart:{c.customer_id}")
        await stack.journeys.cart_cleared(c.customer_id)
        await handle.result()  # nothing in flight when the worker stops (the shared server's clock)
    reminder = [(e.channel, e.outcome, e.detail) for e in timeline if e.step == "cart_reminder" and e.channel]
    assert reminder[0] == (Channel.PUSH, Outcome.SKIPPED, reason)
    assert reminder[1][:2] == (Channel.WEB_PUSH, Outcome.SENT)
    assert [m["channel"] for m in stack.sandbox.messages.values()] == ["web_push"]
