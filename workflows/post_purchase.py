"""The post-purchase journey: payment, shipping, review request, recent-buyer sale.

Storyboard (journey time):

1. ``order.paid``: payment-complete AlimTalk at once; SMS if AlimTalk fails or no receipt comes.
2. ``order.shipped``: shipping-started AlimTalk, same fallback.
3. ``review_delay`` (3 days) after ``order.delivered``, at the first moment between 10:00 and
   20:00 KST: review request, same fallback.
4. ``sale_after_delivery`` (14 days) after delivery: recent-buyer sale LMS, an ad.

``order.cancelled`` or ``order.refunded`` ends the journey at any point; if shipping or
delivery does not come within ``give_up_after`` (30 days), the journey ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow

from durable_journeys.activities.contracts import (
    Channel,
    Purpose,
)
from durable_journeys.workflows.models import EventType, JourneyEvent, JourneyResult, Order, PostPurchaseInput
from durable_journeys.workflows.steps import JourneyWorkflow

JOURNEY = "post-purchase"
KAKAO_THEN_SMS = (Channel.ALIMTALK, Channel.SMS)

# step -> (channels, template): the facade checks these templates before a journey starts.
POST_PURCHASE_STEPS: dict[str, tuple[tuple[Channel, ...], str]] = {
    "payment_complete": (KAKAO_THEN_SMS, "order_paid"),
    "shipping_started": (KAKAO_THEN_SMS, "order_shipped"),
    "review_request": (KAKAO_THEN_SMS, "review_request"),
    "recent_buyer_sale": ((Channel.SMS,), "recent_buyer_sale"),
}


def post_purchase_id(order_id: str) -> str:
    """The workflow id of an order's post-purchase journey (one per order, ever)."""
    return f"{JOURNEY}:{order_id}"


def order_variables(order: Order, review_url: str, sale_url: str) -> dict[str, str]:
    """Template variables derived from the order (the customer's name comes from the profile)."""
    first = order.items[0].name
    more = len(order.items) - 1
    return {
        "order_id": order.order_id,
        "item_name": f"{first} 외 {more}건" if more else first,
        "amount": f"{order.amount:,}",
        # Not str.format: the URL comes from the caller, and a format string can reach attributes.
        "review_url": review_url.replace("{order_id}", order.order_id),
        "sale_url": sale_url,
    }


@workflow.defn(name="PostPurchase")
class PostPurchaseJourney(JourneyWorkflow):
    """One order's post-purchase journey.

    Signals: ``event`` (``order.shipped``, ``order.delivered``, ``order.cancelled``,
    ``order.refunded``), ``receipt``. Query: ``timeline``.
    """

    journey = JOURNEY
    steps = POST_PURCHASE_STEPS
    # Started by the facade's order_paid() (it records the order first), once per order, ever.
    once_per_key = True
    start_stage = "waiting_for_shipping"
    start_summary = "Post-purchase journey"
    listens_to = frozenset({EventType.ORDER_SHIPPED, EventType.ORDER_DELIVERED})
    max_events_per_type = 2  # it waits for one of each (a second leaves room for a corrected one)

    @classmethod
    def workflow_ids(cls, customer_id: str, orders: Sequence[str], event: JourneyEvent) -> list[str]:
        """The journey of the order the event names, if it is one of the customer's (else none).

        ``Journeys.order_shipped(order_id)`` and its kind name the order; a customer event does not.
        """
        order_id = event.data.get("order_id")
        return [post_purchase_id(str(order_id))] if order_id in orders else []

    exit_events = frozenset({EventType.ORDER_CANCELLED, EventType.ORDER_REFUNDED})

    @workflow.run
    async def run(self, inp: PostPurchaseInput) -> JourneyResult:
        return await self.run_story(inp.order.customer_id, inp.settings, self._story(inp))

    async def _story(self, inp: PostPurchaseInput) -> str:
        s = inp.settings
        variables = order_variables(inp.order, s.review_url, s.sale_url)

        # A stage (the JourneyStage search attribute, written when the journey waits) names what
        # the journey waits for next; ``was``: its name in journeys started before v11.
        self.stage("waiting_for_shipping")
        await self._step("payment_complete", variables, inp)

        event = await self.wait_for(
            {EventType.ORDER_SHIPPED, EventType.ORDER_DELIVERED},
            s.give_up_after,
            summary="wait for shipping",
            on_timeout="the journey gives up (gave_up:not_shipped)",
        )
        if event is None:
            return "gave_up:not_shipped"
        if event.type is EventType.ORDER_SHIPPED:
            self.stage("waiting_for_delivery")
            await self._step("shipping_started", variables, inp)
            event = await self.wait_for(
                {EventType.ORDER_DELIVERED},
                s.give_up_after,
                summary="wait for delivery",
                on_timeout="the journey gives up (gave_up:not_delivered)",
            )
            if event is None:
                return "gave_up:not_delivered"
        delivered_at = event.received_at or workflow.now()

        self.stage("waiting_for_review_day")
        await self.delay_until(delivered_at + s.review_delay, summary="review request after delivery")
        if s.review_hours_kst:
            # v2: a review request never wakes anyone up; it waits for 10:00-20:00 KST.
            opening, closing = s.review_hours_kst
            await self.delay_until_local_hours(opening, closing, summary="review request in daytime")
        self.stage("waiting_for_sale_day")
        await self._step("review_request", variables, inp)

        await self.delay_until(delivered_at + s.sale_after_delivery, summary="recent-buyer sale")
        self.stage("sale")
        # Over the frequency cap, the sale waits for the window (a few days at most), not skipped.
        await self._step(
            "recent_buyer_sale", variables, inp, purpose=Purpose.ADVERTISING, defer_within=s.sale_defer_within
        )
        return "completed"

    async def _step(
        self,
        step: str,
        variables: dict[str, str],
        inp: PostPurchaseInput,
        *,
        purpose: Purpose = Purpose.INFORMATIONAL,
        defer_within: timedelta | None = None,
    ) -> None:
        channels, template = POST_PURCHASE_STEPS[step]
        await self.send_with_fallback(
            step,
            channels,
            template,
            variables,
            purpose=purpose,
            receipt_timeout=inp.settings.receipt_timeout,
            on_cap="skip" if defer_within is None else "defer",
            defer_within=defer_within,
        )
