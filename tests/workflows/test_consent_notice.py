"""The biennial consent notice, two years at a time on the time-skipping server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import KST, Channel, CustomerProfile, MessageRecord, Purpose
from durable_journeys.activities.policy import PolicyConfig, check
from durable_journeys.starter.stack import Stack
from durable_journeys.starter.testing import journey_kit
from durable_journeys.workflows import consent_notice_id
from tests import factories

TWO_YEARS = timedelta(days=730)


@pytest.fixture
async def stack(env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Stack]:
    """The kit's stack, its facade starting consent-notice journeys (off in the other tests' stacks)."""
    async with journey_kit(env, tmp_path / "journeys.db", consent_notices=True) as kit:
        yield kit.stack


def consenting(**consents: timedelta) -> CustomerProfile:
    """A customer who consented to ads on each channel this long before the test's clock."""
    return factories.customer(
        marketing_consent={Channel(ch): factories.clock - ago for ch, ago in consents.items()},
        push_tokens=["device-token-1"],
    )


async def notices(stack: Stack, customer_id: str) -> list[MessageRecord]:
    return [m for m in await stack.store.messages(customer_id=customer_id) if m.template == "consent_notice"]


async def test_the_notice_goes_out_before_two_years_on_the_consent_channel_and_restarts_the_clock(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    c = consenting(sms=timedelta(days=30), email=timedelta(days=30))
    given = c.marketing_consent[Channel.SMS]
    async with stack.worker():
        await stack.journeys.update_customer(c)
        await env.sleep(TWO_YEARS - timedelta(days=40))  # not yet: no notice
        assert await notices(stack, c.customer_id) == []
        await env.sleep(timedelta(days=20))
        first = await notices(stack, c.customer_id)
        await env.sleep(TWO_YEARS)
        both = await notices(stack, c.customer_id)
        profile = await stack.store.get_customer(c.customer_id)
    assert sorted(m.channel for m in first) == ["email", "sms"]
    for m in first:
        assert m.purpose == Purpose.INFORMATIONAL.value and m.status == "accepted"
        at = m.journey_time
        assert at is not None and given + TWO_YEARS - timedelta(days=8) <= at <= given + TWO_YEARS
        assert 10 <= at.astimezone(KST).hour < 20  # in the customer's daytime
    # Two years after the first notice, the second: the notice restarted the clock.
    second = [m for m in both if m not in first]
    assert sorted(m.channel for m in second) == ["email", "sms"]
    first_at = min(m.journey_time for m in first if m.journey_time)
    assert all(m.journey_time and m.journey_time - first_at > TWO_YEARS - timedelta(days=9) for m in second)
    assert profile is not None and set(profile.consent_notices) == {Channel.SMS, Channel.EMAIL}
    sms_body = next(v for v in stack.sandbox.messages.values() if v["channel"] == "sms")["body"]
    assert "수신동의" in sms_body and "(광고)" not in sms_body


def test_a_notice_keeps_the_consent_valid_past_two_years() -> None:
    policy = PolicyConfig()
    c = consenting(sms=timedelta(days=0))
    given = c.marketing_consent[Channel.SMS]
    noon = given.replace(hour=3)  # 12:00 KST
    later = noon + TWO_YEARS + timedelta(days=30)
    assert check(c, Channel.SMS, Purpose.ADVERTISING, later, policy).reason == "marketing_consent_expired"
    renewed = c.model_copy(update={"consent_notices": {Channel.SMS: given + TWO_YEARS - timedelta(days=7)}})
    assert check(renewed, Channel.SMS, Purpose.ADVERTISING, later, policy).allowed


async def test_withdrawn_consent_ends_the_schedule_and_no_notice_goes_out(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    c = consenting(sms=timedelta(days=30))
    async with stack.worker():
        await stack.journeys.update_customer(c)
        await env.sleep(timedelta(days=30))
        await stack.journeys.unsubscribe(c.customer_id)
        handle = stack.journeys.client.get_workflow_handle(consent_notice_id(c.customer_id))
        result = await handle.result()
        await env.sleep(TWO_YEARS)
        assert await notices(stack, c.customer_id) == []
    assert result["outcome"] == "no_consent"


async def test_a_consent_given_again_later_moves_the_notice(env: WorkflowEnvironment, stack: Stack) -> None:
    c = consenting(sms=timedelta(days=300))
    async with stack.worker():
        await stack.journeys.update_customer(c)
        await env.sleep(timedelta(days=100))
        fresh = c.model_copy(update={"marketing_consent": {Channel.SMS: factories.clock + timedelta(days=100)}})
        await stack.journeys.update_customer(fresh)  # consent given again: the clock starts over
        await env.sleep(TWO_YEARS - timedelta(days=300))  # when the old consent would have been due
        assert await notices(stack, c.customer_id) == []
        await env.sleep(timedelta(days=300))
        sent = await notices(stack, c.customer_id)
        handle = stack.journeys.client.get_workflow_handle(consent_notice_id(c.customer_id))
        status = (await handle.describe()).status
    assert [m.channel for m in sent] == ["sms"]
    assert status is WorkflowExecutionStatus.RUNNING  # continued as new, waiting for the next two years


async def test_a_profile_update_without_a_consent_change_starts_nothing(env: WorkflowEnvironment, stack: Stack) -> None:
    c = factories.customer(marketing_consent={})
    async with stack.worker():
        await stack.journeys.update_customer(c)
        await stack.journeys.update_customer(c.model_copy(update={"tier": "vip"}))
    with pytest.raises(RPCError) as err:
        await stack.journeys.client.get_workflow_handle(consent_notice_id(c.customer_id)).describe()
    assert err.value.status is RPCStatusCode.NOT_FOUND


async def test_a_consent_whose_channel_no_longer_reaches_the_customer_is_noticed_by_sms(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    c = consenting(push=timedelta(days=30)).model_copy(update={"push_tokens": []})  # the app is gone
    async with stack.worker():
        await stack.journeys.update_customer(c)
        await env.sleep(TWO_YEARS)
        sent = await notices(stack, c.customer_id)
        profile = await stack.store.get_customer(c.customer_id)
    assert [(m.step.split("_")[2], m.channel) for m in sent] == [("push", "sms")]
    assert profile is not None and set(profile.consent_notices) == {Channel.PUSH}  # the push consent renewed
