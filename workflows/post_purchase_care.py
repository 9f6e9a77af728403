"""The post-purchase care journey: two weeks of onboarding after a customer's first payment.

Storyboard (journey time from the start):

1. Day 0: a welcome with a tutorial link, in the app's inbox (customers without the app: email,
   or SMS when there is no email).
2. Day 7: a recommendation banner in the app (shown at the next app open) if the app was opened
   (or installed) since day 0; otherwise (inactive, or no app) an SMS instead.
3. Day 14: a tier-specific message (VIP or regular): push, or the inbox when push cannot reach
   them; email or SMS without the app.

``app.installed`` mid-journey switches every later step to the app's channels. The id is
``care:{customer_id}:{order_id}``; it also serves services with nothing to deliver.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import Channel, Purpose

from workflows.models import CareInput, EventType, JourneyEvent, JourneyResult
from workflows.steps import JourneyWorkflow

JOURNEY = "care"
APP_WELCOME = (Channel.IN_APP,)
NO_APP = (Channel.EMAIL, Channel.SMS)
APP_TIER = (Channel.PUSH, Channel.IN_APP)
ACTIVE = (Channel.IN_APP,)
INACTIVE = (Channel.SMS,)

# Every template a care journey may use, with the channels it may go out on (checked at start).
CARE_TEMPLATES_USED: dict[str, tuple[Channel, ...]] = {
    "care_welcome": (*APP_WELCOME, *NO_APP),
    "care_recommendation": (*ACTIVE, *INACTIVE),
    "care_tier_vip": (*APP_TIER, *NO_APP),
    "care_tier_regular": (*APP_TIER, *NO_APP),
}


def care_id(customer_id: str, order_id: str) -> str:
    """The workflow id of the care journey started by an order."""
    return f"{JOURNEY}:{customer_id}:{order_id}"


@workflow.defn(name="PostPurchaseCare")
class PostPurchaseCareJourney(JourneyWorkflow):
    """One customer's two-week care journey.

    Signals: ``event`` (``app.installed``, ``app.opened``), ``receipt``. Query: ``timeline``.
    """

    journey = JOURNEY

    @workflow.init
    def __init__(self, inp: CareInput) -> None:
        super().__init__()
        self._app_installed = inp.app_installed

    @workflow.run
    async def run(self, inp: CareInput) -> JourneyResult:
        return await self.run_story(inp.customer_id, self._story(inp))

    def on_event_received(self, event: JourneyEvent) -> None:
        if event.type in (EventType.APP_INSTALLED, EventType.APP_OPENED):
            self._app_installed = True

    async def _story(self, inp: CareInput) -> str:
        s = inp.settings
        start = workflow.now()
        variables = {"tutorial_url": s.tutorial_url, "recommendation_url": s.recommendation_url}

        self.stage("welcome")
        await self._step("care_welcome", APP_WELCOME if self._app_installed else NO_APP, variables, inp)

        await self.delay_until(start + s.banner_after, summary="day-7 recommendation")
        active = self._app_installed and self.has_event({EventType.APP_OPENED, EventType.APP_INSTALLED})
        self.stage("recommendation" if active else "reactivation")
        await self._step("care_recommendation", ACTIVE if active else INACTIVE, variables, inp,
                         purpose=Purpose.ADVERTISING)

        await self.delay_until(start + s.tier_message_after, summary="day-14 tier message")
        template = "care_tier_vip" if inp.tier == "vip" else "care_tier_regular"
        self.stage(f"tier_{inp.tier}")
        await self._step(template, APP_TIER if self._app_installed else NO_APP, variables, inp)
        return "completed"

    async def _step(
        self, template: str, channels: tuple[Channel, ...], variables: dict[str, str], inp: CareInput,
        *, purpose: Purpose = Purpose.INFORMATIONAL,
    ) -> None:
        await self.send_with_fallback(
            template, channels, template, variables, purpose=purpose, receipt_timeout=inp.settings.receipt_timeout
        )
