"""The shop's own channel, added from outside the pack: routed, policed and logged like a built-in one.

Run from this folder: ``pytest`` (``conftest.py`` names ``shop.fax`` in ``JOURNEYS_PLUGINS`` and routes
the ``fax`` channel to its provider).
"""

from __future__ import annotations

from datetime import timedelta

from shop.fax import FAX, FaxProvider
from shop.fax_offer import FaxOfferJourney

from durable_journeys.activities import Channel
from durable_journeys.starter.testing import JourneyKit, Recipients


def customer(customer_id: str, **extra: object) -> dict[str, object]:
    return {"customer_id": customer_id, "name": "하늘", "phone": Recipients.DELIVERS, **extra}


async def consented(journey_kit: JourneyKit) -> dict[str, object]:
    since = await journey_kit.now() - timedelta(days=1)
    return {"fax": since, "sms": since}


async def test_an_ad_goes_out_by_fax_with_the_ad_mark(journey_kit: JourneyKit) -> None:
    fax = journey_kit.stack.providers.get("fax")
    assert isinstance(fax, FaxProvider)
    await journey_kit.set_profile(
        customer("c-fax-1", addresses={"fax": "02-555-0100"}, marketing_consent=await consented(journey_kit))
    )
    async with journey_kit.worker(FaxOfferJourney):
        result = await (await journey_kit.start(FaxOfferJourney, "c-fax-1")).result()
    assert result.outcome == "sent_by_fax"
    assert [(m.step, m.channel) for m in await journey_kit.sent(customer_id="c-fax-1")] == [("offer", FAX)]
    [(header, msg)] = [(h, m) for h, m in fax.outbox if m.to == "02-555-0100"]
    assert header == "DURABLE SHOP"  # JOURNEYS_FAX_HEADER reached the provider
    assert msg.body.startswith("(광고)") and "FAX5" in msg.body  # the ad rules apply to the new channel


async def test_without_a_fax_number_the_step_falls_back_to_sms(journey_kit: JourneyKit) -> None:
    await journey_kit.set_profile(customer("c-fax-2", marketing_consent=await consented(journey_kit)))
    async with journey_kit.worker(FaxOfferJourney):
        result = await (await journey_kit.start(FaxOfferJourney, "c-fax-2")).result()
    assert result.outcome == "sent_by_sms"
    assert [m.channel for m in await journey_kit.sent(customer_id="c-fax-2")] == [Channel.SMS]


async def test_without_consent_on_fax_nothing_goes_out_by_fax(journey_kit: JourneyKit) -> None:
    await journey_kit.set_profile(customer("c-fax-3", addresses={"fax": "02-555-0101"}))
    async with journey_kit.worker(FaxOfferJourney):
        result = await (await journey_kit.start(FaxOfferJourney, "c-fax-3")).result()
    assert result.outcome == "not_sent"
    assert await journey_kit.sent(customer_id="c-fax-3") == []
