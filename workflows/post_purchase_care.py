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

from collections.abc import Sequence

from temporalio import workflow

from durable_journeys.activities.contracts import (
    Channel,
    Purpose,
)
from durable_journeys.workflows.models import CareInput, CareSettings, EventType, JourneyEvent, JourneyResult
from durable_journeys.workflows.steps import JourneyWorkflow

JOURNEY = "care"
APP_WELCOME = (Channel.IN_APP,)
NO_APP = (Channel.EMAIL, Channel.SMS)
APP_TIER = (Channel.PUSH, Channel.IN_APP)
ACTIVE = (Channel.IN_APP,)
INACTIVE = (Channel.SMS,)

APP_EVENTS = frozenset({EventType.APP_INSTALLED, EventType.APP_OPENED})

# step -> (every channel it may go out on, template): the facade checks these before a start.
CARE_STEPS: dict[str, tuple[tuple[Channel, ...], str]] = {
    "care_welcome": ((*APP_WELCOME, *NO_APP), "care_welcome"),
    "care_recommendation": ((*ACTIVE, *INACTIVE), "care_recommendation"),
    "care_tier_vip": ((*APP_TIER, *NO_APP), "care_tier_vip"),
    "care_tier_regular": ((*APP_TIER, *NO_APP), "care_tier_regular"),
}


def care_variables(settings: CareSettings) -> dict[str, str]:
    """Template variables of the care journey (the customer's name comes from the profile)."""
    return {"tutorial_url": settings.tutorial_url, "recommendation_url": settings.recommendation_url}


def care_id(customer_id: str, order_id: str) -> str:
    """The workflow id of the care journey started by an order."""
    return f"{JOURNEY}:{customer_id}:{order_id}"


@workflow.defn(name="PostPurchaseCare")
class PostPurchaseCareJourney(JourneyWorkflow):
    """One customer's two-week care journey.

    Signals: ``event`` (``app.installed``, ``app.opened``; ``order.cancelled`` and
    ``order.refunded`` of its order end it), ``receipt``. Query: ``timeline``.
    """

    journey = JOURNEY
    steps = CARE_STEPS
    # Started by the facade's order_paid() for the customer's first order (JOURNEYS_CARE_SEGMENT), once.
    once_per_key = True
    start_stage = "welcome"
    start_summary = "Care journey"
    listens_to = APP_EVENTS
    # A cancelled or refunded order ends its care journey: no ad, no tier message after it.
    exit_events = frozenset({EventType.ORDER_CANCELLED, EventType.ORDER_REFUNDED})

    @classmethod
    def workflow_ids(cls, customer_id: str, orders: Sequence[str], event: JourneyEvent) -> list[str]:
        """One care journey per order: every order's of the customer for app events.

        An order's cancellation reaches only that order's care journey, through
        ``Journeys.order_cancelled(order_id)``: a customer event names no order.
        """
        if event.type in cls.exit_events:
            return []
        return [care_id(customer_id, o) for o in orders]

    @workflow.run
    async def run(self, inp: CareInput) -> JourneyResult:
        return await self.run_story(inp.customer_id, inp.settings, self._story(inp))

    async def _story(self, inp: CareInput) -> str:
        s = inp.settings
        start = workflow.now()
        variables = care_variables(s)

        def app() -> bool:  # installed at the start, or since
            return inp.app_installed or self.has_event(APP_EVENTS)

        self.stage("welcome")
        await self._step("care_welcome", APP_WELCOME if app() else NO_APP, variables, inp)

        await self.delay_until(start + s.banner_after, summary="day-7 recommendation")
        active = self.has_event(APP_EVENTS)  # opened, or installed, since day 0
        self.stage("recommendation" if active else "reactivation")
        await self._step(
            "care_recommendation", ACTIVE if active else INACTIVE, variables, inp, purpose=Purpose.ADVERTISING
        )

        await self.delay_until(start + s.tier_message_after, summary="day-14 tier message")
        template = "care_tier_vip" if inp.tier == "vip" else "care_tier_regular"
        self.stage(f"tier_{inp.tier}")
        await self._step(template, APP_TIER if app() else NO_APP, variables, inp)
        return "completed"

    async def _step(
        self,
        template: str,
        channels: tuple[Channel, ...],
        variables: dict[str, str],
        inp: CareInput,
        *,
        purpose: Purpose = Purpose.INFORMATIONAL,
    ) -> None:
        await self.send_with_fallback(
            template, channels, template, variables, purpose=purpose, receipt_timeout=inp.settings.receipt_timeout
        )
