"""A shop's own journey with an experiment (tests/workflows/test_experiments.py).

In a module of its own: the workflow sandbox re-imports the module a journey is defined in.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

from durable_journeys.activities.contracts import Channel
from durable_journeys.workflows import JourneyResult, JourneySettings, JourneyWorkflow

GUIDE_SPLIT = "guide_channel"


class GuideInput(BaseModel):
    customer_id: str


@workflow.defn(name="TestSplitGuide")
class SplitGuideJourney(JourneyWorkflow):
    """An in-app guide or an e-mail guide, or nothing (the control), by the customer's variant."""

    journey = "split-guide"
    steps = {"guide": ((Channel.IN_APP, Channel.EMAIL), "care_welcome")}

    @workflow.run
    async def run(self, inp: GuideInput) -> JourneyResult:
        return await self.run_story(inp.customer_id, JourneySettings(), self._story())

    async def _story(self) -> str:
        variant = await self.split(GUIDE_SPLIT, {"in_app": 2, "email": 1, "control": 1})
        if variant == "control":
            return "control"
        channel = Channel.IN_APP if variant == "in_app" else Channel.EMAIL
        await self.send_with_fallback(
            "guide",
            (channel,),
            "care_welcome",
            {"tutorial_url": "https://shop.example/g"},
            receipt_timeout=self._settings.receipt_timeout,
        )
        again = await self.split(GUIDE_SPLIT, ["control", "in_app", "email"])  # a second split: the same variant
        return f"{variant}/{again}"
