"""Tests of the shop's welcome journey with the testing kit, as the guide shows them: runnable as they are.

Run from this folder: ``pytest`` (its ``conftest.py`` points the kit at the shop's templates).
"""

from __future__ import annotations

from datetime import timedelta

from shop.welcome import WelcomeInput, WelcomeJourney

from durable_journeys.activities import Channel
from durable_journeys.starter.testing import JourneyKit, Recipients
from durable_journeys.workflows import Outcome


def member(customer_id: str, **extra: object) -> dict[str, object]:
    return {"customer_id": customer_id, "name": "하늘", "phone": Recipients.DELIVERS, **extra}


async def test_a_new_member_gets_the_note_then_a_coupon_by_sms(journey_kit: JourneyKit) -> None:
    consented = await journey_kit.now() - timedelta(days=1)
    await journey_kit.set_profile(member("c-welcome-1", marketing_consent={"sms": consented}))
    async with journey_kit.worker(WelcomeJourney):
        handle = await journey_kit.start(WelcomeJourney, WelcomeInput(customer_id="c-welcome-1"))
        result = await handle.result()  # time skips to the journey's end
    sent = await journey_kit.sent(customer_id="c-welcome-1")
    assert [(m.step, m.channel) for m in sent] == [("welcome_note", Channel.IN_APP), ("welcome_coupon", Channel.SMS)]
    assert sent[1].journey_time is not None and sent[0].journey_time is not None
    assert sent[1].journey_time - sent[0].journey_time >= timedelta(days=2)
    assert handle.id == "welcome:c-welcome-1" and result.outcome == "coupon_sent"


async def test_a_purchase_ends_it_before_the_coupon(journey_kit: JourneyKit) -> None:
    await journey_kit.set_profile(member("c-welcome-2"))
    async with journey_kit.worker(WelcomeJourney):
        handle = await journey_kit.start(WelcomeJourney, WelcomeInput(customer_id="c-welcome-2"))
        await journey_kit.advance(timedelta(days=1))
        assert await journey_kit.emit("c-welcome-2", {"type": "purchase"}) == 1  # routed to the shop's journey
        result = await handle.result()
    assert result.outcome == "exited:purchase"
    assert [m.step for m in await journey_kit.sent(customer_id="c-welcome-2")] == ["welcome_note"]
    assert (Outcome.ENDED, "ended by purchase") in [(e.outcome, e.detail) for e in result.timeline]
