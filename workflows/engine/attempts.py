"""One channel's send: the activity, retried in rounds through outages and deferrals, reconciled when unknown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

from durable_journeys.activities.contracts import (
    CONFIG_ERROR,
    KST,
    OUTCOME_UNKNOWN,
    SEND_MESSAGE,
    SEND_QUEUES,
    WRONG_QUEUE,
    Channel,
    OutcomeStatus,
    Purpose,
    ReceiptMode,
    SendOutcome,
    SendRequest,
    idempotency_key,
)

# Only the metrics counter (a side effect outside replay, never a command) comes through the
# sandbox unchecked: activities are scheduled by name (activities/contracts.py).
with workflow.unsafe.imports_passed_through():
    pass

from durable_journeys.workflows.engine.waiting import JourneyWaiting
from durable_journeys.workflows.models import (
    Outcome,
)

SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=[CONFIG_ERROR],
)
# One round of activity retries lasts this long; between rounds the journey waits on a durable
# timer (shown in the timeline and the UI), doubling up to OUTAGE_MAX_PAUSE. The
# schedule-to-close timeout is no part of the command sequence checked on replay, so changing it
# needs no patch.
SEND_ROUND = timedelta(minutes=10)
# Before a run's first send (and after a failed round), a local activity names the task queue of
# each channel whose provider is rate-limited fleet-wide; sends on that channel are scheduled there.
ROUTE_TIMEOUT = timedelta(seconds=10)
OUTAGE_FIRST_PAUSE = timedelta(minutes=1)
OUTAGE_MAX_PAUSE = timedelta(minutes=30)


@dataclass(frozen=True)
class CapRule:
    """What a step does with an ad over a frequency cap (see ``send_with_fallback``)."""

    on_cap: Literal["skip", "defer"] = "skip"
    defer_until: datetime | None = None


class JourneyAttempts(JourneyWaiting):
    """Sending on one channel until it is settled: taken, refused, skipped, deferred, expired or unknown."""

    def _experiment(self) -> tuple[str | None, str | None]:
        """The experiment and variant a send carries (none here; see ``JourneySplits``)."""
        return None, None

    async def _send_one(
        self,
        step: str,
        channel: Channel,
        template: str,
        variables: dict[str, str],
        purpose: Purpose,
        supersedes: list[str],
        started: datetime,
        gateway: Sequence[Channel] = (),
        cap: CapRule | None = None,
        await_receipt: bool = True,
    ) -> SendOutcome | None:
        """One channel's send, waiting out deferrals and outages; None on a configuration error.

        ``await_receipt=False``: nobody waits for its receipt, which the webhook app only logs.
        """
        key = idempotency_key(workflow.info().workflow_id, step, channel, self._episode())
        pause = OUTAGE_FIRST_PAUSE
        waiting = False  # an earlier round failed: the next one settles its claim first
        while True:
            request = self._request(
                step,
                channel,
                template,
                variables,
                purpose,
                supersedes=supersedes,
                reentry_cooldown=self._reentry_cooldown,
                reconcile=waiting,
                gateway=list(gateway),
                on_cap=cap.on_cap if cap else "skip",
                defer_until=cap.defer_until if cap else None,
                await_receipt=await_receipt,
            )
            try:
                outcome = await self._execute_send(
                    request, schedule_to_close=self._round(started), summary=f"{step} via {channel.value}"
                )
            except ActivityError as err:
                failure = _failure_type(err)
                if failure == WRONG_QUEUE:  # told the routes: send again at once, on the channel's queue
                    self._send_queues = _routes_of(err)
                    continue
                if failure == CONFIG_ERROR:
                    workflow.logger.error("step %s stopped by a configuration error: %s", step, err.cause)
                    self._record(step, Outcome.CONFIG_ERROR, channel, _message_of(err))
                    return None
                ended = self._outage_ended(step, channel, failure, started)
                if ended is not None:
                    return SendOutcome(status=ended, channel=channel, idempotency_key=key, reason=failure)
                self._send_queues = None  # the next round asks again: routes may have changed
                if not waiting:
                    waiting = True
                    why = "outcome unknown, reconciling" if _maybe_sent(failure) else f"{failure}, will retry"
                    self._record(step, Outcome.WAITING, channel, why)
                    workflow.set_current_details(f"{self.journey}: {step} waiting ({why})")
                # A receipt for this key settles an unknown outcome: the provider took the message.
                if await self.wait_until(lambda: key in self._receipts, pause, summary=f"{step}: {failure}, try again"):
                    return SendOutcome(
                        status=OutcomeStatus.ACCEPTED,
                        channel=channel,
                        idempotency_key=key,
                        receipt=ReceiptMode.WEBHOOK,
                        reason="settled by its receipt",
                    )
                pause = min(pause * 2, OUTAGE_MAX_PAUSE)
                continue
            if outcome.status is not OutcomeStatus.DEFERRED or outcome.not_before is None:
                return outcome
            until = outcome.not_before.astimezone(KST)
            self._record(step, Outcome.DEFERRED, channel, f"{outcome.reason} until {until:%Y-%m-%d %H:%M:%S} KST")
            await self.delay_until(outcome.not_before, summary=f"{step}: {outcome.reason}")
            self._raise_if_exited()

    def _request(
        self, step: str, channel: Channel, template: str, variables: dict[str, str], purpose: Purpose, **extra: Any
    ) -> SendRequest:
        """The send request of ``step`` on ``channel`` at this journey time (``extra``: the other fields).

        From engine 3 a send whose receipt the journey waits for asks for it in its answer when
        it comes within the worker's receipt grace (see ``_execute_send``).
        """
        extra.setdefault("receipt_in_answer", extra.get("await_receipt", True) and self.engine >= 3)
        experiment, variant = self._experiment()
        return SendRequest(
            workflow_id=workflow.info().workflow_id,
            journey=self.journey,
            step=step,
            customer_id=self.state.customer_id,
            channel=channel,
            template=template,
            purpose=purpose,
            variables=variables,
            journey_time=workflow.now(),
            episode=self._episode(),
            experiment=experiment,
            variant=variant,
            **extra,
        )

    async def _execute_send(self, request: SendRequest, *, schedule_to_close: timedelta, summary: str) -> SendOutcome:
        """The send activity for ``request``, on its channel's provider queue.

        Raises:
            ActivityError: the send failed after its retries (or for configuration).
        """
        outcome: SendOutcome = await workflow.execute_activity(
            SEND_MESSAGE,
            request,
            result_type=SendOutcome,
            task_queue=await self._queue_for(request.channel),
            start_to_close_timeout=self._send_timeout,
            schedule_to_close_timeout=schedule_to_close,
            retry_policy=SEND_RETRY,
            summary=summary,
        )
        if outcome.delivery is not None:  # it came within the receipt grace: no signal, no receipt timer
            self.on_receipt(outcome.delivery)
        return outcome

    async def _queue_for(self, channel: Channel) -> str | None:
        """The task queue of ``channel``'s rate-limited provider (None: the journey's own queue).

        From engine 2 a run does not ask first: it sends on its own queue until a send activity
        answers ``WRONG_QUEUE`` with the routes (only where a provider is rate-limited), saving
        every other journey a local activity, its marker and a workflow task.
        """
        if self._send_queues is None and self.engine >= 2:
            return None
        if self._send_queues is None:
            self._send_queues = await workflow.execute_local_activity(
                SEND_QUEUES, result_type=dict[Channel, str], start_to_close_timeout=ROUTE_TIMEOUT, summary="send queues"
            )
        return self._send_queues.get(channel)

    def _round(self, started: datetime) -> timedelta:
        """How long this round of attempts may last: a round never runs past the step's deadline."""
        if self._send_deadline is None:
            return SEND_ROUND
        left = started + self._send_deadline - workflow.now()
        return max(min(SEND_ROUND, left), timedelta(seconds=1))

    def _outage_ended(self, step: str, channel: Channel, failure: str, started: datetime) -> OutcomeStatus | None:
        """Whether a send that keeps failing for infrastructure reasons ends its step now, and how."""
        elapsed = workflow.now() - started
        if _maybe_sent(failure) and elapsed >= self._unknown_window:
            ended, detail = Outcome.UNKNOWN, f"may have been sent; not reconciled within {self._unknown_window}"
        elif self._send_deadline is not None and elapsed >= self._send_deadline:
            ended, detail = Outcome.EXPIRED, f"{failure} past the deadline of {self._send_deadline}"
        else:
            return None
        self._record(step, ended, channel, detail)
        workflow.set_current_details(f"{self.journey}: {step} ended {ended.value} ({detail})")
        workflow.logger.warning("step %s ended %s on %s: %s", step, ended.value, channel.value, failure)
        return OutcomeStatus(ended.value)


def _failure_type(err: ActivityError) -> str:
    """The type of the last failure behind an activity error (``timeout`` for a timed-out attempt)."""
    cause: BaseException | None = err.cause
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type:
            return cause.type
        if isinstance(cause, ActivityTimeout) and cause.cause is None:
            return "timeout"
        cause = getattr(cause, "cause", None)  # the SDK's failures chain through .cause
    return "unknown"


def _routes_of(err: ActivityError) -> dict[Channel, str]:
    """The routes a ``WRONG_QUEUE`` failure carries (channel -> task queue)."""
    cause = err.cause
    details = cause.details if isinstance(cause, ApplicationError) else ()
    routes = details[0] if details and isinstance(details[0], dict) else {}
    return {Channel(k): str(v) for k, v in routes.items() if k in Channel._value2member_map_}


def _maybe_sent(failure: str) -> bool:
    """Whether an attempt that failed so may have reached the provider (reconcile, never fall back)."""
    return failure in (OUTCOME_UNKNOWN, "timeout", "unknown")


def _message_of(err: ActivityError) -> str | None:
    cause = err.cause
    return cause.message if isinstance(cause, ApplicationError) else None
