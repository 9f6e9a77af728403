"""A journey that sends on the shop's own channel: an offer by fax, by SMS when there is no fax number."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_journeys.activities import Channel, Purpose
    from shop.fax import FAX

from durable_journeys.workflows import JourneyResult, JourneySettings, JourneyWorkflow


@workflow.defn(name="ShopFaxOffer")
class FaxOfferJourney(JourneyWorkflow):
    """One offer (id ``fax-offer:{customer_id}``)."""

    journey = "fax-offer"
    steps = {"offer": ((FAX, Channel.SMS), "fax_offer")}

    @workflow.run
    async def run(self, customer_id: str) -> JourneyResult:
        settings = JourneySettings()
        return await self.run_story(customer_id, settings, self._story(settings))

    async def _story(self, settings: JourneySettings) -> str:
        self.stage("offer")
        result = await self.send_with_fallback(
            "offer",
            (FAX, Channel.SMS),
            "fax_offer",
            {"coupon_code": "FAX5"},
            purpose=Purpose.ADVERTISING,
            receipt_timeout=settings.receipt_timeout,
        )
        return f"sent_by_{result.delivered.value}" if result.delivered else "not_sent"
