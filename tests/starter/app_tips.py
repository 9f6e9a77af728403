"""A shop-style journey that declares how it starts (tests/starter/test_triggered_journeys.py).

In a module of its own: the workflow sandbox re-imports the module a journey is defined in.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from temporalio import workflow

from durable_journeys.activities.contracts import Channel
from durable_journeys.workflows import EventType, JourneyEvent, JourneyResult, JourneySettings, JourneyWorkflow


class TipsSettings(JourneySettings):
    tutorial_url: str = "https://shop.example/guide"


class TipsInput(BaseModel):
    customer_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    installed_at: datetime | None = None
    tutorial_url: str = "https://shop.example/guide"


@workflow.defn(name="TestAppTips")
class AppTipsJourney(JourneyWorkflow):
    """An in-app guide when the app is installed; once per customer."""

    journey = "app-tips"
    steps = {"guide": ((Channel.IN_APP,), "care_welcome")}
    starts_on = frozenset({EventType.APP_INSTALLED})
    once_per_key = True
    start_stage = "guide_due"
    start_summary = "App tips"

    @classmethod
    def start_input(cls, customer_id: str, event: JourneyEvent, settings: JourneySettings | None) -> TipsInput | None:
        if customer_id.startswith("staff-"):
            return None  # the journey's own rule: staff installs start nothing
        url = settings.tutorial_url if isinstance(settings, TipsSettings) else TipsSettings().tutorial_url
        return TipsInput(customer_id=customer_id, installed_at=event.occurred_at, tutorial_url=url)

    @workflow.run
    async def run(self, inp: TipsInput) -> JourneyResult:
        settings = JourneySettings()
        return await self.run_story(inp.customer_id, settings, self._story(settings, inp.tutorial_url))

    async def _story(self, settings: JourneySettings, tutorial_url: str) -> str:
        self.stage("guide")
        result = await self.send_with_fallback(
            "guide",
            (Channel.IN_APP,),
            "care_welcome",
            {"tutorial_url": tutorial_url},
            receipt_timeout=settings.receipt_timeout,
        )
        return "guided" if result.delivered else "not_guided"


@workflow.defn(name="TestGoodbye")
class GoodbyeJourney(AppTipsJourney):
    """An informational note when a customer unsubscribes (an event the facade also acts on itself)."""

    journey = "goodbye"
    starts_on = frozenset({EventType.UNSUBSCRIBED})

    @workflow.run
    async def run(self, inp: TipsInput) -> JourneyResult:
        settings = JourneySettings()
        return await self.run_story(inp.customer_id, settings, self._story(settings, inp.tutorial_url))
