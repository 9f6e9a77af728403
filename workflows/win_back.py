"""The win-back journey: a comeback offer for a customer who has gone quiet.

Written only with the public step API (``docs/writing-a-journey.md`` walks through it).

Storyboard (one run chain per customer, id ``win-back:{customer_id}``):

1. Wait until the customer has been inactive for ``dormant_after`` (60 days). Every
   ``customer.active`` event (``Journeys.customer_active``: a visit, a login, a purchase) restarts
   that clock.
2. Dormant: a comeback coupon by app push, or by Kakao Brand Message when push cannot reach
   them (no app). An ad: consent, quiet hours and frequency caps apply in the send path; over the
   cap it waits for the window (two days at most).
3. No open or click within ``open_within`` (3 days): a second touch by SMS, for those with SMS
   consent (the send path skips the others).
4. A purchase at any point ends the journey; the app's next ``customer_active`` starts a new run.
"""

from __future__ import annotations

from temporalio import workflow

from durable_journeys.activities.contracts import (
    Channel,
    Purpose,
)
from durable_journeys.workflows.models import (
    EventType,
    JourneyEvent,
    JourneyResult,
    JourneySettings,
    WinBackInput,
    WinBackSettings,
)
from durable_journeys.workflows.steps import JourneyWorkflow

JOURNEY = "win-back"
OFFER = (Channel.PUSH, Channel.BRAND_MESSAGE)  # push if it reaches them, else Brand Message
SECOND_TOUCH = (Channel.SMS,)
ENGAGED = frozenset({EventType.MESSAGE_OPENED, EventType.MESSAGE_CLICKED})

WIN_BACK_STEPS: dict[str, tuple[tuple[Channel, ...], str]] = {
    "winback_offer": (OFFER, "winback_offer"),
    "winback_second_touch": (SECOND_TOUCH, "winback_second_touch"),
}


def win_back_id(customer_id: str) -> str:
    """The workflow id of a customer's win-back journey."""
    return f"{JOURNEY}:{customer_id}"


@workflow.defn(name="WinBack")
class WinBackJourney(JourneyWorkflow):
    """One customer's win-back journey. Signals: ``event`` (``customer.active``, ``message.*``, ``purchase``)."""

    journey = JOURNEY
    steps = WIN_BACK_STEPS
    listens_to = frozenset({EventType.CUSTOMER_ACTIVE, *ENGAGED})
    exit_events = frozenset({EventType.PURCHASE})
    reuses_workflow_id = True  # a new run after a purchase: its messages are keyed apart
    many_events = frozenset({EventType.CUSTOMER_ACTIVE})  # a run continues as new after continue_as_new_after
    starts_on = frozenset({EventType.CUSTOMER_ACTIVE})  # signal-with-start: one run per customer
    start_stage = "waiting_until_dormant"
    start_summary = "Win-back journey"

    @classmethod
    def start_input(cls, customer_id: str, event: JourneyEvent, settings: JourneySettings | None) -> WinBackInput:
        """The customer's win-back run, its dormancy clock from the activity (the event reaches it too)."""
        own = {"settings": settings} if isinstance(settings, WinBackSettings) else {}
        return WinBackInput(customer_id=customer_id, last_active=event.occurred_at, **own)

    @workflow.init
    def __init__(self, inp: WinBackInput) -> None:
        super().__init__(inp.state)

    @workflow.run
    async def run(self, inp: WinBackInput) -> JourneyResult:
        return await self.run_story(inp.customer_id, inp.settings, self._story(inp))

    async def _story(self, inp: WinBackInput) -> str:
        s = inp.settings
        last_active = inp.last_active or workflow.now()
        seen = 0
        self.stage("waiting_until_dormant")
        while True:  # 1. until dormant; each activity restarts the clock
            event = await self.wait_for(
                [EventType.CUSTOMER_ACTIVE], last_active + s.dormant_after - workflow.now(), summary="until dormant"
            )
            if event is None:
                break
            last_active = max(last_active, event.occurred_at or event.received_at or workflow.now())
            seen += 1
            if seen >= s.continue_as_new_after:  # history stays small for a customer active for years
                await self.continue_as_new(inp.model_copy(update={"last_active": last_active}))

        variables = {"coupon_code": s.coupon_code, "shop_url": s.shop_url}
        self.stage("offer")
        await self.send_with_fallback(  # 2. the comeback coupon
            "winback_offer",
            OFFER,
            "winback_offer",
            variables,
            purpose=Purpose.ADVERTISING,
            receipt_timeout=s.receipt_timeout,
            on_cap="defer",
            defer_within=s.offer_defer_within,
        )
        self.stage("waiting_for_open")
        engaged = await self.wait_for(  # 3. opened, clicked, or back on their own
            [*ENGAGED, EventType.CUSTOMER_ACTIVE], s.open_within, summary="second touch unless the offer is opened"
        )
        if engaged is not None:
            return "engaged" if engaged.type in ENGAGED else "active_again"
        self.stage("second_touch")
        await self.send_with_fallback(
            "winback_second_touch",
            SECOND_TOUCH,
            "winback_second_touch",
            variables,
            purpose=Purpose.ADVERTISING,
            receipt_timeout=s.receipt_timeout,
        )
        return "completed"
