"""Operators' tools on the facade: list journeys, say what one waits for, skip a wait, end one, resend a step."""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel
from temporalio.client import (
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from durable_journeys.activities import (
    Channel,
    MessageRecord,
    ReceiptStatus,
)
from durable_journeys.starter.dispatch import JourneyDispatch
from durable_journeys.starter.errors import ActionRefused, InvalidInput, JourneyNotFound
from durable_journeys.starter.inputs import (
    WORKFLOW_ID_TYPE,
    operator_action,
    validated,
    visibility_query,
)
from durable_journeys.workflows import (
    CUSTOMER_ID,
    JOURNEY,
    JOURNEY_STAGE,
    EventType,
    JourneyWorkflow,
    OperatorAction,
    Outcome,
    TimelineEntry,
    WaitInfo,
)


def with_logged_receipts(entries: list[TimelineEntry], logged: list[MessageRecord]) -> list[TimelineEntry]:
    """``entries`` with each logged receipt after its message's ``sent`` line (at no earlier journey time).

    A message is matched by step and the channel it was sent on: a send still waiting for its
    receipt within the receipt grace has no ``sent`` line yet, and its receipt, which the
    journey is about to learn from the send's answer, is not shown before it.
    """
    if not logged or not entries:
        return entries
    started = entries[0].at - entries[0].elapsed
    by_send: dict[tuple[str, str], list[MessageRecord]] = {}
    for message in logged:
        by_send.setdefault((message.step, message.channel), []).append(message)
    merged: list[TimelineEntry] = []
    for entry in entries:
        merged.append(entry)
        sent = (entry.step, entry.channel.value if entry.channel else "")
        if entry.outcome is not Outcome.SENT or sent not in by_send:
            continue
        for message in by_send.pop(sent):
            delivered = message.receipt_status == ReceiptStatus.DELIVERED.value
            at = max(entry.at, message.receipt_at or entry.at)
            merged.append(
                TimelineEntry(
                    step=message.step,
                    at=at,
                    elapsed=at - started,
                    outcome=Outcome.DELIVERED if delivered else Outcome.FAILED,
                    channel=Channel(message.receipt_channel or message.channel),
                    detail="gateway fallback"
                    if delivered
                    else f"{message.receipt_error_code}; gateway fallback exhausted",
                )
            )
    return merged


class JourneySummary(BaseModel):
    """One journey in a list (``Journeys.list_journeys``, ``journeys list``)."""

    workflow_id: str
    journey: str
    stage: str | None = None
    customer_id: str | None = None
    status: str
    started_at: datetime | None = None


class JourneyOperations(JourneyDispatch):
    """What operators do to running journeys (``journeys list``, ``skip``, ``exit``, ``resend``, ``inspect``)."""

    async def list_journeys(
        self,
        *,
        customer_id: str | None = None,
        journey: str | None = None,
        stage: str | None = None,
        running: bool = True,
        limit: int = 100,
    ) -> list[JourneySummary]:
        """Journeys found by Temporal's visibility (the UI's list), newest first.

        Args:
            customer_id: one customer's journeys (search attribute ``CustomerId``).
            journey: one journey (``Journey``, e.g. ``cart``).
            stage: at one stage (``JourneyStage``, e.g. ``waiting_for_delivery``).
            running: only running journeys (default), or ended ones too.
            limit: at most this many (1 to 1000).

        Raises:
            InvalidInput: a filter that is no id or name, or a limit out of range.
        """
        query = visibility_query(customer_id=customer_id, journey=journey, stage=stage, running=running)
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit", ["limit: between 1 and 1000"])
        found: list[JourneySummary] = []
        async for execution in self.client.list_workflows(query, limit=limit):
            attributes = execution.typed_search_attributes
            found.append(
                JourneySummary(
                    workflow_id=execution.id,
                    journey=attributes.get(JOURNEY) or execution.workflow_type,
                    stage=attributes.get(JOURNEY_STAGE),
                    customer_id=attributes.get(CUSTOMER_ID),
                    status=execution.status.name.lower() if execution.status else "unknown",
                    started_at=execution.start_time,
                )
            )
        return found

    async def skip_wait(
        self, workflow_id: str, *, operator: str, reason: str, as_event: EventType | str | None = None
    ) -> str:
        """End the wait a journey is in now (timer, event or receipt), as if it had run out.

        With ``as_event`` (one of the events the wait is for, see :meth:`waiting`), as if that
        event had come instead: skip "wait for delivery" as ``order.delivered``, not as giving up.

        Returns:
            What the journey did, in one line.

        Raises:
            ActionRefused: the journey is not waiting (or not for ``as_event``), has ended or is exiting.
            JourneyNotFound: no such journey.
            InvalidInput: operator or reason missing or too long, or no such event type.
        """
        action = operator_action(workflow_id, operator, reason, as_event=as_event)
        return await self._operate(workflow_id, "skip_wait", action)

    async def waiting(self, workflow_id: str) -> WaitInfo:
        """What a journey waits for now and what :meth:`skip_wait` would do to it (say it before acting).

        Raises:
            JourneyNotFound: no such journey.
        """
        validated(WORKFLOW_ID_TYPE, workflow_id, "workflow_id")
        try:
            info: WaitInfo = await self.client.get_workflow_handle(workflow_id).query(JourneyWorkflow.waiting)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise JourneyNotFound(f"no journey {workflow_id!r}") from None
            raise
        return info

    async def exit_journey(self, workflow_id: str, *, operator: str, reason: str) -> str:
        """End a journey: nothing more is sent (a message already with the provider is not recalled)."""
        return await self._operate(workflow_id, "exit", operator_action(workflow_id, operator, reason))

    async def resend(
        self,
        workflow_id: str,
        step: str,
        *,
        operator: str,
        reason: str,
        channel: Channel | str | None = None,
        wait: float = 30.0,
    ) -> str:
        """Send a journey's step again, under a new idempotency key linked to the first message.

        Consent, opt-out and quiet hours still rule it; frequency caps and the duplicate-content
        window do not (an operator chose to send it again).

        Args:
            workflow_id: the journey.
            step: a step it sent (``journeys inspect`` lists them).
            operator: who acts.
            reason: why.
            channel: the channel (default: the one it went out on); one of the step's channels.
            wait: seconds to wait for the provider's answer; past that the resend goes on, and
                its outcome shows in the timeline.
        """
        action = operator_action(workflow_id, operator, reason, step=step, channel=channel)
        return await self._operate(workflow_id, "resend", action, wait=wait)

    async def _operate(self, workflow_id: str, update: str, action: OperatorAction, *, wait: float = 30.0) -> str:
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            started = await handle.start_update(
                update, action, wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=str
            )
            try:
                async with asyncio.timeout(wait):
                    return str(await started.result())
            except TimeoutError:
                return f"{update} accepted; still in progress: `journeys inspect {workflow_id}` shows how it ends"
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
            raise ActionRefused(f"{workflow_id}: {message}") from None
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                await self._describe_or_not_found(workflow_id)  # there, so it has ended
                raise ActionRefused(f"{workflow_id}: the journey has ended") from None
            raise

    async def timeline(self, workflow_id: str) -> list[TimelineEntry]:
        """A journey's timeline so far (works on running and finished journeys).

        Receipts nobody waited for by signal (a gateway chain's, from engine 2) come from the
        message log, each right after the step's ``sent`` line, as the journey would have
        recorded them had it been told.
        """
        entries: list[TimelineEntry] = await self.client.get_workflow_handle(workflow_id).query(
            JourneyWorkflow.timeline
        )
        if not any(e.outcome is Outcome.SENT for e in entries):
            return entries
        logged = [
            m for m in await self.store.messages(workflow_id=workflow_id) if not m.receipt_awaited and m.receipt_status
        ]
        return with_logged_receipts(entries, logged)
