"""A shop's own journey: a welcome series for a new member (docs/writing-a-journey.md).

Storyboard (journey time):

1. Signed up: a welcome message at once, in the app's inbox (informational).
2. After ``coupon_after`` (2 days), unless they already bought: a first-order coupon by app push,
   or by SMS when push cannot reach them (an ad: consent, quiet hours and caps apply).
3. A purchase at any point ends it.

Run it with ``JOURNEYS_JOURNEYS='["shop.welcome:WelcomeJourney"]'`` and
``JOURNEYS_TEMPLATES_DIR`` naming ``templates/`` beside this file.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_journeys.activities import Channel, Purpose

from durable_journeys.workflows import EventType, JourneyResult, JourneySettings, JourneyWorkflow


class WelcomeSettings(JourneySettings):
    """When the coupon goes out, and its code."""

    coupon_after: timedelta = Field(default=timedelta(days=2), gt=timedelta(0))
    coupon_code: str = Field(default="WELCOME10", min_length=1, max_length=40)


class WelcomeInput(BaseModel):
    """A new member: ids only, never contact details (the send path reads them from the store)."""

    model_config = ConfigDict(extra="ignore")

    customer_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    settings: WelcomeSettings = Field(default_factory=WelcomeSettings)


@workflow.defn(name="ShopWelcome")
class WelcomeJourney(JourneyWorkflow):
    """One new member's welcome series (id ``welcome:{customer_id}``)."""

    journey = "welcome"
    steps = {
        "welcome_note": ((Channel.IN_APP,), "welcome_note"),
        "welcome_coupon": ((Channel.PUSH, Channel.SMS), "welcome_coupon"),
    }
    exit_events = frozenset({EventType.PURCHASE})

    @workflow.run
    async def run(self, inp: WelcomeInput) -> JourneyResult:
        return await self.run_story(inp.customer_id, inp.settings, self._story(inp))

    async def _story(self, inp: WelcomeInput) -> str:
        s = inp.settings
        self.stage("welcome")
        await self.send_with_fallback(
            "welcome_note", (Channel.IN_APP,), "welcome_note", {}, receipt_timeout=s.receipt_timeout
        )
        self.stage("waiting_for_coupon_day")
        await self.delay(s.coupon_after, summary="first-order coupon")
        self.stage("coupon")
        result = await self.send_with_fallback(
            "welcome_coupon",
            (Channel.PUSH, Channel.SMS),
            "welcome_coupon",
            {"coupon_code": s.coupon_code},
            purpose=Purpose.ADVERTISING,
            receipt_timeout=s.receipt_timeout,
        )
        return "coupon_sent" if result.delivered else "coupon_not_delivered"
