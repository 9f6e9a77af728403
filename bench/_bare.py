"""The bare baseline: the post-purchase shape with trivial activities, no database, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow

SEND_TIMEOUT = timedelta(seconds=30)


@dataclass
class BareInput:
    review_delay_seconds: float
    sale_after_seconds: float


@activity.defn(name="bare_send")
async def bare_send(step: str) -> str:
    return step


@workflow.defn(name="BarePostPurchase")
class BarePostPurchase:
    """start, send, signal, send, signal, send (after a timer), send (after a timer)."""

    def __init__(self) -> None:
        self.events: list[str] = []

    @workflow.signal
    def event(self, name: str) -> None:
        self.events.append(name)

    @workflow.run
    async def run(self, inp: BareInput) -> None:
        await workflow.execute_activity(bare_send, "payment_complete", start_to_close_timeout=SEND_TIMEOUT)
        await workflow.wait_condition(lambda: "shipped" in self.events)
        await workflow.execute_activity(bare_send, "shipping_started", start_to_close_timeout=SEND_TIMEOUT)
        await workflow.wait_condition(lambda: "delivered" in self.events)
        delivered = workflow.now()
        await workflow.sleep(inp.review_delay_seconds)
        await workflow.execute_activity(bare_send, "review_request", start_to_close_timeout=SEND_TIMEOUT)
        await workflow.sleep(
            max(0.0, (delivered + timedelta(seconds=inp.sale_after_seconds) - workflow.now()).total_seconds())
        )
        await workflow.execute_activity(bare_send, "recent_buyer_sale", start_to_close_timeout=SEND_TIMEOUT)
