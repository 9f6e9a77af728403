"""Two small advertising journeys for contact-policy tests, written on the public steps.

Two classes, so two journey names: the journey priority ranks them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_journeys.activities import Channel, Purpose

from durable_journeys.workflows import JourneyResult, JourneySettings, JourneyWorkflow


class PromoInput(BaseModel):
    customer_id: str
    step: str = "promo"
    channels: list[Channel]
    template: str = "promo_sale"
    variables: dict[str, str] = Field(default_factory=lambda: {"sale_url": "https://shop.example/sale"})
    purpose: Purpose = Purpose.ADVERTISING
    after: timedelta = timedelta(0)
    on_cap: Literal["skip", "defer"] = "skip"
    defer_within: timedelta | None = None


class _Promo(JourneyWorkflow):
    async def _story(self, inp: PromoInput) -> str:
        if inp.after:
            await self.delay(inp.after, summary="until the promotion")
        result = await self.send_with_fallback(
            inp.step,
            inp.channels,
            inp.template,
            inp.variables,
            purpose=inp.purpose,
            receipt_timeout=timedelta(minutes=10),
            on_cap=inp.on_cap,
            defer_within=inp.defer_within,
        )
        return "delivered" if result.delivered else "not_delivered"


@workflow.defn(name="PromoJourney")
class PromoJourney(_Promo):
    journey = "promo"

    @workflow.run
    async def run(self, inp: PromoInput) -> JourneyResult:
        return await self.run_story(inp.customer_id, JourneySettings(), self._story(inp))


@workflow.defn(name="FlashSaleJourney")
class FlashSaleJourney(_Promo):
    journey = "flash-sale"

    @workflow.run
    async def run(self, inp: PromoInput) -> JourneyResult:
        return await self.run_story(inp.customer_id, JourneySettings(), self._story(inp))
