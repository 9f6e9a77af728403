"""Sending a step: its channels in order, falling back, or all in one gateway call (each channel: ``attempts``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow

from durable_journeys.activities.contracts import (
    CUSTOMER_SKIPS,
    UNKNOWN_CUSTOMER,
    Channel,
    OutcomeStatus,
    Purpose,
    ReceiptMode,
    ReceiptStatus,
    SendOutcome,
)

# Only the metrics counter (a side effect outside replay, never a command) comes through the
# sandbox unchecked: activities are scheduled by name (activities/contracts.py).
with workflow.unsafe.imports_passed_through():
    pass

from durable_journeys.workflows.engine.attempts import CapRule, JourneyAttempts
from durable_journeys.workflows.models import (
    Outcome,
    SentStep,
    StepResult,
)


class JourneySending(JourneyAttempts):
    """``send_with_fallback`` and what it is made of."""

    # steps -----------------------------------------------------------------------------------
    async def send_with_fallback(
        self,
        step: str,
        channels: Sequence[Channel],
        template: str,
        variables: dict[str, str],
        *,
        purpose: Purpose = Purpose.INFORMATIONAL,
        receipt_timeout: timedelta,
        on_cap: Literal["skip", "defer"] = "skip",
        defer_within: timedelta | None = None,
    ) -> StepResult:
        """Send on the first channel; on rejection, failed receipt or no receipt in time, the next.

        The contact policy rules every send (consent, quiet hours, frequency caps, journey
        priority, duplicate content). An ad over a frequency cap is ``skipped`` (reason
        ``frequency_cap``) with ``on_cap="skip"``; with ``on_cap="defer"`` the step waits until
        the window frees, unless that is more than ``defer_within`` after the step started (then
        it is skipped: a coupon for a week-old cart is no use).

        Only the first channel that delivers counts: later channels are never sent. A channel is
        left only on outcomes known not to have sent. While the store or the provider is down
        the step waits (``waiting`` in the timeline) and tries again; it ends ``expired`` past
        the journey's ``send_deadline``, and ``unknown`` when a send that may have gone out
        cannot be reconciled within ``unknown_window``: in neither case is another channel tried.

        Raises:
            JourneyExit: an exit event arrived before or during the step.
        """
        tried: list[str] = []
        started = workflow.now()
        cap = CapRule(on_cap=on_cap, defer_until=started + defer_within if defer_within is not None else None)
        if len(channels) > 1 and self._settings.fallback_mode(step) == "gateway":
            result = await self._send_by_gateway(step, channels, template, variables, purpose, tried, started, cap)
            if result is not None:
                return result
            channels = channels[1:]  # the provider did not take the chain: the journey falls back itself
        for channel in channels:
            self._raise_if_exited()
            outcome = await self._send_one(step, channel, template, variables, purpose, tried, started, cap=cap)
            if outcome is None:
                return StepResult(step=step, config_error=True)
            if outcome.status in (OutcomeStatus.UNKNOWN, OutcomeStatus.EXPIRED):
                # Unknown may have been sent and expired is no longer worth sending: either way
                # no other channel goes out for this step.
                return StepResult(step=step, ended=Outcome(outcome.status.value))
            tried.append(outcome.idempotency_key)
            if self.state.customer_unknown and outcome.reason != UNKNOWN_CUSTOMER:
                self.state.customer_unknown = False  # the profile has arrived since
                self.stage(self.state.stage)
            if outcome.status is OutcomeStatus.ACCEPTED:
                self._went_out(step, template, variables, purpose, outcome.idempotency_key)
                if outcome.receipt is ReceiptMode.NONE:
                    self._record(step, Outcome.DELIVERED, channel, "accepted; no receipt expected")
                    return StepResult(step=step, delivered=channel)
                self._record(step, Outcome.SENT, channel)
                receipt = await self._await_receipt(outcome.idempotency_key, receipt_timeout)
                if receipt is None:
                    self._closed_keys.add(outcome.idempotency_key)
                    why = "wait skipped by an operator" if self._skipped else f"none within {receipt_timeout}"
                    self._record(step, Outcome.NO_RECEIPT, channel, why)
                    continue
                if receipt.status is ReceiptStatus.DELIVERED:
                    self._record(step, Outcome.DELIVERED, channel)
                    return StepResult(step=step, delivered=channel)
                self._record(step, Outcome.FAILED, channel, receipt.error_code)
            else:
                self._record_not_sent(step, channel, outcome)
                if outcome.status is OutcomeStatus.SKIPPED and outcome.reason == UNKNOWN_CUSTOMER:
                    self.state.customer_unknown = True
                    self.stage(self.state.stage)
                    self._record(step, Outcome.NOT_DELIVERED, None, "the store has no profile for this customer")
                    return StepResult(step=step)
                if self._skipped_for_customer(step, outcome):
                    return StepResult(step=step)
        self._record(step, Outcome.NOT_DELIVERED, None, "no channel delivered")
        return StepResult(step=step)

    async def _send_by_gateway(
        self,
        step: str,
        channels: Sequence[Channel],
        template: str,
        variables: dict[str, str],
        purpose: Purpose,
        tried: list[str],
        started: datetime,
        cap: CapRule,
    ) -> StepResult | None:
        """One provider call carrying every channel of the step; None: it was not taken.

        Not waiting for the receipt is the point: the provider falls back by itself, and the
        receipt, whenever it comes, records the channel that delivered. From engine 2 it is not
        signalled either: the log keeps it and the facade's timeline reads it from there.
        """
        first = channels[0]
        signalled = self.engine < 2
        outcome = await self._send_one(
            step,
            first,
            template,
            variables,
            purpose,
            tried,
            started,
            gateway=channels[1:],
            cap=cap,
            await_receipt=signalled,
        )
        if outcome is None:
            return StepResult(step=step, config_error=True)
        if outcome.status in (OutcomeStatus.UNKNOWN, OutcomeStatus.EXPIRED):
            return StepResult(step=step, ended=Outcome(outcome.status.value))
        tried.append(outcome.idempotency_key)
        if outcome.status is OutcomeStatus.ACCEPTED:
            self._went_out(step, template, variables, purpose, outcome.idempotency_key)
            rest = ", ".join(c.value for c in channels[1:])
            self._record(step, Outcome.SENT, first, f"gateway fallback to {rest}")
            if outcome.receipt is not ReceiptMode.NONE and signalled:
                self._track_receipt(self._gateway_keys, outcome.idempotency_key, step)
            return StepResult(step=step)
        self._record_not_sent(step, first, outcome)
        if self._skipped_for_customer(step, outcome):
            return StepResult(step=step)
        return None

    def _skipped_for_customer(self, step: str, outcome: SendOutcome) -> bool:
        """Whether ``outcome`` is a skip by a rule about the customer: then the step ends here."""
        if outcome.status is not OutcomeStatus.SKIPPED or outcome.reason not in CUSTOMER_SKIPS:
            return False
        if outcome.reason == UNKNOWN_CUSTOMER:
            return False
        self._record(step, Outcome.NOT_DELIVERED, None, f"{outcome.reason} holds on every channel; none other tried")
        return True

    def _record_not_sent(self, step: str, channel: Channel, outcome: SendOutcome) -> None:
        """A send that did not go out: rejected, skipped (by policy or profile), or failed after retries."""
        if outcome.status is OutcomeStatus.REJECTED:
            self._record(step, Outcome.REJECTED, channel, outcome.error_code)
        elif outcome.status is OutcomeStatus.SKIPPED:
            self._record(step, Outcome.SKIPPED, channel, outcome.reason)
        else:  # FAILED after retries: the channel is down for now
            self._record(step, Outcome.FAILED, channel, outcome.error_code)

    # internals -------------------------------------------------------------------------------

    def _track_receipt(self, tracked: dict[str, str], key: str, step: str) -> None:
        """A send nobody waits for: its receipt, whenever it comes (or came with the answer), settles ``step``."""
        tracked[key] = step
        early = self._receipts.pop(key, None)
        if early is not None:
            self.on_receipt(early)

    def _went_out(self, step: str, template: str, variables: dict[str, str], purpose: Purpose, key: str) -> None:
        """Remember what ``step`` sent (for an operator's resend)."""
        before = self.state.sent_steps.get(step)
        keys = [*before.keys, key] if before is not None else [key]
        self.state.sent_steps[step] = SentStep(template=template, variables=variables, purpose=purpose, keys=keys)
