"""The biennial consent notice: every two years, whoever opted in to ads hears that it stands.

Korea's Network Act wants each customer who consented to ads told, every two years, that the
consent stands and how to withdraw it.

Storyboard (one run chain per customer, id ``consent-notice:{customer_id}``):

1. Ask the store for the customer's ad consents still in force, each with its clock: when it was
   given, or when the last notice for it went out, whichever is later.
2. Wait until the earliest clock is two years old (less ``lead``), then until the customer's
   daytime (KST). A ``consent.changed`` event (the shop's backend changed the consents) starts
   over from 1.
3. For each consent due, send the notice on the channel the consent was given for (by SMS or
   e-mail when that channel cannot reach the customer; an informational message: no ad rules
   or caps apply), and record it: the record restarts that consent's two-year clock, and ads on
   the channel stay allowed.
4. Continue as new (history stays small however many years it runs). A notice that did not
   reach the customer is tried again ``retry_after`` later, until the consent lapses.

No consent in force: the journey ends (the facade starts it again when one is given).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from durable_journeys.activities.contracts import (
    CONSENT_CLOCKS,
    KST,
    RECORD_CONSENT_NOTICE,
    Channel,
    ConsentClock,
    ConsentClocksRequest,
    ConsentNotice,
    Purpose,
)
from durable_journeys.providers.channels import channel_spec
from durable_journeys.workflows.models import ConsentNoticeInput, EventType, JourneyResult
from durable_journeys.workflows.steps import JourneyWorkflow

JOURNEY = "consent-notice"
TEMPLATE = "consent_notice"
# The channels an ad consent can be given for (in-app needs none): the notice goes where the consent is.
NOTICE_CHANNELS = (Channel.SMS, Channel.BRAND_MESSAGE, Channel.RCS, Channel.PUSH, Channel.WEB_PUSH, Channel.EMAIL)
NOTICE_FALLBACK = (Channel.SMS, Channel.EMAIL)
STORE_TIMEOUT = timedelta(seconds=30)


def consent_notice_id(customer_id: str) -> str:
    """The workflow id of a customer's consent-notice journey."""
    return f"{JOURNEY}:{customer_id}"


@workflow.defn(name="ConsentNotice")
class ConsentNoticeJourney(JourneyWorkflow):
    """One customer's two-yearly consent notices. Signals: ``event`` (``consent.changed``), ``receipt``."""

    journey = JOURNEY
    steps = {"consent_notice": (NOTICE_CHANNELS, TEMPLATE)}
    # Started by the facade when a profile's ad consents change (JOURNEYS_CONSENT_NOTICES), not by an event.
    start_stage = "scheduled"
    start_summary = "Consent notices every two years"
    listens_to = frozenset({EventType.CONSENT_CHANGED})
    many_events = frozenset({EventType.CONSENT_CHANGED})  # each change continues as new

    @workflow.init
    def __init__(self, inp: ConsentNoticeInput) -> None:
        super().__init__(inp.state)

    @workflow.run
    async def run(self, inp: ConsentNoticeInput) -> JourneyResult:
        return await self.run_story(inp.customer_id, inp.settings, self._story(inp))

    async def _story(self, inp: ConsentNoticeInput) -> str:
        s = inp.settings
        # Changes signalled before this plan are in it: the store is read after them.
        while await self.wait_for([EventType.CONSENT_CHANGED], timedelta(0)) is not None:
            pass
        clocks = await self._clocks(inp)
        if not clocks:
            return "no_consent"
        due = min(c.since for c in clocks) + s.every - s.lead
        self.stage("scheduled")
        workflow.set_current_details(f"{self.journey}: next notice {due.astimezone(KST):%Y-%m-%d} (KST)")
        changed = await self.wait_for([EventType.CONSENT_CHANGED], due - workflow.now(), summary="until the notice")
        if changed is None:
            start, end = s.notice_hours_kst
            await self.delay_until_local_hours(start, end, summary="consent notice in daytime")
            if not await self._notify(inp):
                await self.delay(s.retry_after, summary="consent notice not delivered; try again")
        await self.continue_as_new(inp)  # after an operator's resend in flight

    async def _notify(self, inp: ConsentNoticeInput) -> bool:
        """Send every notice due now; True if each reached the customer."""
        s = inp.settings
        now = workflow.now()
        delivered = True
        for clock in await self._clocks(inp):
            if clock.since + s.every - s.lead > now:
                continue
            self.stage("notifying")
            # On the consent's own channel; if that cannot reach them (no app any more), by SMS or e-mail.
            channels = [clock.channel, *(c for c in NOTICE_FALLBACK if c is not clock.channel)]
            result = await self.send_with_fallback(
                f"consent_notice_{clock.channel.value}_{now.astimezone(KST):%Y%m%d}",
                channels,
                TEMPLATE,
                {
                    "consent_date": f"{clock.given_at.astimezone(KST):%Y년 %m월 %d일}",
                    "channel_name": channel_spec(clock.channel).label or clock.channel.value,
                },
                purpose=Purpose.INFORMATIONAL,
                receipt_timeout=s.receipt_timeout,
            )
            if result.delivered is None:
                delivered = False
                continue
            await workflow.execute_activity(
                RECORD_CONSENT_NOTICE,
                ConsentNotice(customer_id=inp.customer_id, channel=clock.channel, at=now),
                start_to_close_timeout=STORE_TIMEOUT,
                summary=f"consent notice on {clock.channel.value} recorded",
            )
        return delivered

    async def _clocks(self, inp: ConsentNoticeInput) -> list[ConsentClock]:
        clocks: list[ConsentClock] = await workflow.execute_activity(
            CONSENT_CLOCKS,
            ConsentClocksRequest(customer_id=inp.customer_id, at=workflow.now(), valid_for=inp.settings.every),
            result_type=list[ConsentClock],
            start_to_close_timeout=STORE_TIMEOUT,
            summary="consents in force",
        )
        return clocks
