"""The win-back journey, tested with the testing kit alone (``journey_kit``), as a shop would."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from durable_journeys.activities import Channel
from durable_journeys.starter.testing import JourneyKit, Recipients
from durable_journeys.workflows import JourneyResult, Outcome

DAY = timedelta(days=1)


async def dormant_customer(kit: JourneyKit, *, app: bool = True, sms_consent: bool = True) -> dict[str, Any]:
    """A customer who consented (day and night) to ads by push, Brand Message and, optionally, SMS."""
    consented = await kit.now() - timedelta(days=90)
    channels = ["push", "brand_message", *(["sms"] if sms_consent else [])]
    return {
        "customer_id": f"c-{uuid.uuid4().hex[:10]}",
        "name": "하늘",
        "phone": Recipients.DELIVERS,
        "push_tokens": ["device-token"] if app else [],
        "app_installed": app,
        "marketing_consent": dict.fromkeys(channels, consented),
        "night_consent_at": consented,
    }


async def active(kit: JourneyKit, c: dict[str, Any]) -> Any:
    return await kit.journeys.customer_active(c["customer_id"], await kit.now(), customer=c)


@pytest.mark.parametrize(("app", "offer_channel"), [(True, Channel.PUSH), (False, Channel.BRAND_MESSAGE)])
async def test_after_60_quiet_days_an_offer_then_an_sms_if_it_is_not_opened(
    journey_kit: JourneyKit, app: bool, offer_channel: Channel
) -> None:
    c = await dormant_customer(journey_kit, app=app)
    async with journey_kit.worker():
        start = await journey_kit.now()
        handle = await active(journey_kit, c)
        await journey_kit.advance(59 * DAY)
        assert await journey_kit.sent() == []  # not dormant yet
        result: JourneyResult = await handle.result()
        sent = await journey_kit.sent()
    assert result.outcome == "completed"
    assert [(m.step, m.channel) for m in sent] == [
        ("winback_offer", offer_channel),
        ("winback_second_touch", Channel.SMS),
    ]
    offer, second = (m.journey_time for m in sent)
    assert offer is not None and second is not None
    assert 60 * DAY <= offer - start < 60 * DAY + timedelta(minutes=1)
    assert 3 * DAY <= second - offer < 3 * DAY + timedelta(minutes=1)


async def test_each_activity_restarts_the_dormancy_clock(journey_kit: JourneyKit) -> None:
    c = await dormant_customer(journey_kit)
    async with journey_kit.worker():
        handle = await active(journey_kit, c)
        await journey_kit.advance(30 * DAY)
        back = await active(journey_kit, c)  # a visit on day 30: the same run hears it
        await journey_kit.advance(31 * DAY)
        assert await journey_kit.sent() == []  # day 61: only 31 days quiet
        await journey_kit.advance(30 * DAY)
        sent = await journey_kit.sent()
        runs = {(await h.describe()).run_id for h in (handle, back)}
    assert [m.step for m in sent][:1] == ["winback_offer"] and len(runs) == 1


@pytest.mark.parametrize("event", ["message.opened", "message.clicked", "customer.active"])
async def test_an_opened_offer_or_a_return_means_no_second_touch(journey_kit: JourneyKit, event: str) -> None:
    c = await dormant_customer(journey_kit)
    async with journey_kit.worker():
        handle = await active(journey_kit, c)
        await journey_kit.advance(61 * DAY)
        assert await journey_kit.emit(c["customer_id"], {"type": event}) == 1
        result: JourneyResult = await handle.result()
        sent = await journey_kit.sent()
    assert [m.step for m in sent] == ["winback_offer"]
    assert result.outcome == ("active_again" if event == "customer.active" else "engaged")


@pytest.mark.parametrize("after", [10 * DAY, 61 * DAY], ids=["while-active", "after-the-offer"])
async def test_a_purchase_at_any_point_ends_it(journey_kit: JourneyKit, after: timedelta) -> None:
    c = await dormant_customer(journey_kit)
    async with journey_kit.worker():
        handle = await active(journey_kit, c)
        await journey_kit.advance(after)
        await journey_kit.journeys.purchase(c["customer_id"], "o-comeback")
        result: JourneyResult = await handle.result()
        await journey_kit.advance(10 * DAY)
        sent = await journey_kit.sent()
    assert result.outcome == "exited:purchase"
    assert [m.step for m in sent] == ([] if after < 60 * DAY else ["winback_offer"])


async def test_no_sms_consent_means_no_second_touch(journey_kit: JourneyKit) -> None:
    c = await dormant_customer(journey_kit, sms_consent=False)
    async with journey_kit.worker():
        handle = await active(journey_kit, c)
        result: JourneyResult = await handle.result()
        sent = await journey_kit.sent()
    assert [m.step for m in sent] == ["winback_offer"]
    skipped = [(e.step, e.detail) for e in result.timeline if e.outcome is Outcome.SKIPPED]
    assert skipped == [("winback_second_touch", "no_marketing_consent")]


async def test_the_offer_obeys_quiet_hours_through_the_send_path(journey_kit: JourneyKit) -> None:
    c = await dormant_customer(journey_kit)
    c["night_consent_at"] = None
    async with journey_kit.worker():
        handle = await active(journey_kit, c)
        result: JourneyResult = await handle.result()
    offer = [e for e in result.timeline if e.step == "winback_offer"]
    sent_at = next(e.at for e in offer if e.outcome is Outcome.SENT)
    assert 8 <= (sent_at.hour + 9) % 24 < 21  # sent in the daytime, KST
    if any(e.outcome is Outcome.DEFERRED for e in offer):  # the 60th day fell at night: deferred to 08:00
        assert next(e.detail for e in offer if e.outcome is Outcome.DEFERRED).startswith("quiet_hours until ")
