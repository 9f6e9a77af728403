"""The post-purchase care journey: segments, activity on day 7, tiers on day 14."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import JourneyResult, Outcome, care_id
from tests import factories
from tests.factories import customer, order


@pytest.fixture
def care_segment() -> str:
    return "first_order"


def member(*, app: bool, tier: str = "regular", **overrides: Any) -> Any:
    consented = factories.clock - timedelta(days=30)
    return customer(
        app_installed=app,
        tier=tier,
        push_tokens=["device-token-1"] if app else [],
        marketing_consent={Channel.SMS: consented},
        **overrides,
    )


async def run_care(
    env: WorkflowEnvironment, stack: Stack, c: Any, events: dict[timedelta, str]
) -> tuple[JourneyResult, list[tuple[str, str]]]:
    """Pay a first order, emit app events at the given journey times, run the care journey out.

    Returns the result and the (step, channel) of every care message that went out, sandbox
    and in-app inbox alike (from the message log).
    """
    o = order(c)
    async with stack.worker():
        await stack.journeys.order_paid(o, c)
        elapsed = timedelta(0)
        for at, event_type in sorted(events.items()):
            await env.sleep(at - elapsed)
            elapsed = at
            assert await stack.journeys.emit(c.customer_id, {"type": event_type}) >= 1
        # Only handles from start_workflow skip time while awaiting a result: move the clock
        # past day 14 first.
        await env.sleep(timedelta(days=15) - elapsed)
        result: JourneyResult = await stack.journeys.client.get_workflow_handle(
            care_id(c.customer_id, o.order_id), result_type=JourneyResult
        ).result()
    log = await stack.store.messages(workflow_id=care_id(c.customer_id, o.order_id))
    return result, [(m.step, m.channel) for m in log if m.status == "accepted"]


def at_day(result: JourneyResult, step: str) -> float:
    [sent] = [e for e in result.timeline if e.step == step and e.outcome in (Outcome.SENT, Outcome.DELIVERED)][:1]
    return sent.elapsed / timedelta(days=1)


async def test_active_app_user_gets_the_day7_banner_in_app(env: WorkflowEnvironment, stack: Stack) -> None:
    c = member(app=True)
    result, sent = await run_care(env, stack, c, {timedelta(days=2): "app.opened"})
    assert sent == [("care_welcome", "in_app"), ("care_recommendation", "in_app"), ("care_tier_regular", "push")]
    assert round(at_day(result, "care_welcome")) == 0
    assert round(at_day(result, "care_recommendation"), 3) == 7
    assert round(at_day(result, "care_tier_regular"), 3) == 14
    inbox = await stack.store.inbox(c.customer_id)
    assert [m.kind for m in inbox] == ["banner", "message"]  # newest first


async def test_inactive_app_user_gets_sms_on_day7(env: WorkflowEnvironment, stack: Stack) -> None:
    c = member(app=True)
    _, sent = await run_care(env, stack, c, {})
    assert sent == [("care_welcome", "in_app"), ("care_recommendation", "sms"), ("care_tier_regular", "push")]


@pytest.mark.parametrize(("tier", "template"), [("vip", "care_tier_vip"), ("regular", "care_tier_regular")])
async def test_day14_message_depends_on_tier(env: WorkflowEnvironment, stack: Stack, tier: str, template: str) -> None:
    c = member(app=True, tier=tier)
    _, sent = await run_care(env, stack, c, {timedelta(days=1): "app.opened"})
    assert sent[-1] == (template, "push")
    body = list(stack.sandbox.messages.values())[-1]["body"]
    assert ("VIP" in body) == (tier == "vip")


async def test_no_app_gets_email_and_sms_in_place_of_in_app(env: WorkflowEnvironment, stack: Stack) -> None:
    c = member(app=False)
    _, sent = await run_care(env, stack, c, {})
    assert sent == [("care_welcome", "email"), ("care_recommendation", "sms"), ("care_tier_regular", "email")]
    assert await stack.store.inbox(c.customer_id) == []


async def test_app_installed_on_day3_switches_later_steps_to_the_app(env: WorkflowEnvironment, stack: Stack) -> None:
    c = member(app=False)
    _, sent = await run_care(env, stack, c, {timedelta(days=3): "app.installed"})
    assert sent == [("care_welcome", "email"), ("care_recommendation", "in_app"), ("care_tier_regular", "in_app")]


async def test_only_the_first_order_starts_care(env: WorkflowEnvironment, stack: Stack) -> None:
    c = member(app=True)
    first, second = order(c), order(c)
    async with stack.worker():
        await stack.journeys.order_paid(first, c)
        await env.sleep(timedelta(hours=1))
        await stack.journeys.order_paid(second, c)
        await stack.journeys.order_paid(first, c)  # a replayed webhook for the first order
        await env.sleep(timedelta(hours=1))
    care = {m.workflow_id for m in await stack.store.messages() if m.workflow_id.startswith("care:")}
    assert care == {care_id(c.customer_id, first.order_id)}


async def test_inbox_api(env: WorkflowEnvironment, stack: Stack) -> None:
    c = member(app=True)
    async with stack.worker():
        await stack.journeys.order_paid(order(c), c)
        await env.sleep(timedelta(hours=1))
    auth = stack.inbox_auth(c.customer_id)
    other = member(app=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.webhook_app), base_url="http://hooks") as http:
        assert (await http.get(f"/inbox/{c.customer_id}")).status_code == 401
        # The server-to-server key opens no inbox; another customer's token is forbidden here.
        assert (await http.get(f"/inbox/{c.customer_id}", headers=stack.api_auth())).status_code == 401
        assert (
            await http.get(f"/inbox/{c.customer_id}", headers=stack.inbox_auth(other.customer_id))
        ).status_code == 403
        inbox = (await http.get(f"/inbox/{c.customer_id}", headers=auth)).json()
        [welcome] = inbox["messages"]
        assert welcome["kind"] == "message" and welcome["read_at"] is None and "환영" in welcome["body"]
        assert (
            await http.post(f"/inbox/{c.customer_id}/{welcome['id']}/read", headers=stack.inbox_auth(other.customer_id))
        ).status_code == 403
        read = await http.post(f"/inbox/{c.customer_id}/{welcome['id']}/read", headers=auth)
        assert read.status_code == 200
        assert (
            await http.post(f"/inbox/someone-else/{welcome['id']}/read", headers=stack.inbox_auth("someone-else"))
        ).status_code == 404
        unread = (await http.get(f"/inbox/{c.customer_id}?unread=true", headers=auth)).json()
        assert unread["messages"] == []


@pytest.mark.parametrize("ending", ["order_cancelled", "order_refunded"])
@pytest.mark.parametrize("day", [1, 8])
async def test_a_cancelled_or_refunded_order_ends_its_care_journey(
    env: WorkflowEnvironment, stack: Stack, ending: str, day: int
) -> None:
    """No ad and no tier message after a cancellation, whenever it comes; another order's care goes on."""
    c = member(app=False, tier="vip")
    first, second = order(c), order(c)
    stack.journeys.care_segment = "every_order"
    async with stack.worker():
        await stack.journeys.order_paid(first, c)
        await stack.journeys.order_paid(second, c)
        await env.sleep(timedelta(days=day))
        answer = await getattr(stack.journeys, ending)(first.order_id)
        await env.sleep(timedelta(days=15 - day))
        ended: JourneyResult = await stack.journeys.client.get_workflow_handle(
            care_id(c.customer_id, first.order_id), result_type=JourneyResult
        ).result()
        went_on: JourneyResult = await stack.journeys.client.get_workflow_handle(
            care_id(c.customer_id, second.order_id), result_type=JourneyResult
        ).result()
    first_log = await stack.store.messages(workflow_id=care_id(c.customer_id, first.order_id))
    event = ending.removeprefix("order_")
    assert answer  # the post-purchase journey got it too
    assert ended.outcome == f"exited:order.{event}"
    assert all(
        m.journey_time is not None and m.journey_time - first_log[0].journey_time < timedelta(days=day)
        for m in first_log
    )
    assert went_on.outcome == "completed"
