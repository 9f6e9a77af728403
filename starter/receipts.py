"""Delivery receipts into the message log and to the journeys, whichever way they arrive.

Used by the webhook app (``POST /webhooks/{provider}``) and by report polling
(``journeys reports``): verified receipts are recorded in one transaction, then each journey
that sent a message is signalled what the log holds for it (the first receipt wins).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from temporalio.service import RPCError, RPCStatusCode

from durable_journeys.activities import DeliveryReceipt, ReceiptRecord
from durable_journeys.activities.metrics import RECEIPT_LATENCY, label
from durable_journeys.providers import ReceiptStatus
from durable_journeys.starter.journeys import Journeys
from durable_journeys.workflows import receipt_signal

log = structlog.get_logger("starter.receipts")

# What became of one receipt.
SIGNALLED, LATE, UNKNOWN, UNAVAILABLE, INTERIM = "signalled", "late", "unknown", "unavailable", "interim"
LOGGED = "logged"  # nobody waits for it by signal (a gateway chain): the log holds it for the timeline


class ReceiptIntake:
    """Records receipts and signals their journeys."""

    def __init__(self, journeys: Journeys) -> None:
        """Record into ``journeys.store`` and signal through ``journeys.client``."""
        self._journeys = journeys

    async def record(self, receipts: Sequence[DeliveryReceipt]) -> list[ReceiptRecord | None]:
        """Attach receipts to their messages (one transaction); None where no message matches."""
        return await self._journeys.store.record_receipts(receipts)

    async def signal_all(
        self, provider_name: str, receipts: Sequence[DeliveryReceipt], records: Sequence[ReceiptRecord | None]
    ) -> list[str]:
        """Signal each receipt's journey; what happened to each, in order (see :meth:`signal`)."""
        return list(
            await asyncio.gather(
                *(self.signal(provider_name, r, record) for r, record in zip(receipts, records, strict=True))
            )
        )

    async def take(self, provider_name: str, receipts: Sequence[DeliveryReceipt]) -> list[str]:
        """Record, then signal: what happened to each receipt, in order."""
        return await self.signal_all(provider_name, receipts, await self.record(receipts))

    async def signal(self, provider_name: str, receipt: DeliveryReceipt, record: ReceiptRecord | None) -> str:
        """Signal the journey that sent the message.

        Returns what happened: ``signalled``, ``late`` (the journey has ended; the log keeps the
        receipt), ``unknown`` (no message of ours), ``interim`` (a gateway chain goes on),
        ``logged`` (the journey does not wait for it: the log keeps it for the timeline) or
        ``unavailable`` (Temporal cannot be reached: the receipt should come again).
        """
        if record is None:
            log.info("receipt.unknown", provider=provider_name, message_id=receipt.provider_message_id)
            return UNKNOWN
        msg = record.message
        if record.interim:  # an earlier channel of the provider's own chain failed; it tries the next
            log.info("receipt.interim", workflow_id=msg.workflow_id, step=msg.step, channel=receipt.channel)
            return INTERIM
        if not msg.receipt_awaited:  # held for a send's answer, or a gateway chain's: the log has it
            _observe_latency(record)
            return LOGGED
        # The journey is told what the log holds (the first receipt wins), so receipts signalled
        # concurrently, or out of order, cannot tell it two different outcomes.
        told = msg.as_receipt()
        logged = ReceiptStatus(msg.receipt_status or receipt.status)
        enriched = (told or receipt).model_copy(
            update={
                "provider_message_id": receipt.provider_message_id,
                "occurred_at": receipt.occurred_at,
                "error_class": receipt.error_class if receipt.status is logged else None,
            }
        )
        try:
            await self._journeys.client.get_workflow_handle(msg.workflow_id).signal(receipt_signal(enriched), enriched)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                log.warning("receipt.signal_failed", workflow_id=msg.workflow_id, status=exc.status.name)
                return UNAVAILABLE
            log.info("receipt.late", workflow_id=msg.workflow_id, step=msg.step, channel=msg.channel)
            return LATE
        _observe_latency(record)
        log.info(
            "receipt.signalled",
            workflow_id=msg.workflow_id,
            step=msg.step,
            channel=msg.channel,
            status=logged.value,
            late=record.late,
        )
        return SIGNALLED


def _observe_latency(record: ReceiptRecord) -> None:
    """A message's first receipt: how long after the send it came, by provider, channel and status."""
    msg = record.message
    if not record.duplicate and msg.receipt_at is not None and msg.receipt_status is not None:
        latency = (msg.receipt_at - msg.created_at).total_seconds()
        RECEIPT_LATENCY.labels(label(msg.provider), label(msg.channel), msg.receipt_status).observe(max(latency, 0.0))


class ReceiptsUnavailable(Exception):
    """Some receipts were recorded but their journeys could not be signalled: take the batch again."""


async def poll_reports(intake: ReceiptIntake, provider: object, *, interval: float = 5.0, once: bool = False) -> None:
    """Consume a provider's polled delivery reports until cancelled (``once``: until none is left).

    Each batch is acknowledged only after its receipts are recorded and their journeys signalled;
    a batch whose journeys cannot be signalled is not acknowledged, so it comes again.

    Args:
        intake: where receipts go.
        provider: a provider with ``poll_receipts(handle)`` (``providers.bizgo.provider.BizgoProvider``).
        interval: seconds between polls when there is nothing to take.
        once: stop after one poll (it takes batches until none is waiting).
    """
    name = getattr(provider, "name", "provider")

    async def handle(receipts: list[object]) -> None:
        good = [r for r in receipts if isinstance(r, DeliveryReceipt) and r.provider == name]
        if len(good) != len(receipts):
            log.warning("reports.invalid", provider=name, invalid=len(receipts) - len(good))
        if UNAVAILABLE in await intake.take(name, good):
            raise ReceiptsUnavailable("journey service unavailable")

    poll = provider.poll_receipts  # type: ignore[attr-defined]
    while True:
        try:
            taken = await poll(handle)
        except ReceiptsUnavailable:
            taken = 0
            log.warning("reports.not_acknowledged", provider=name, reason="journey service unavailable")
        except Exception as exc:  # noqa: BLE001 - polling goes on; the class says enough
            taken = 0
            log.warning("reports.poll_failed", provider=name, error=type(exc).__name__)
        if taken:
            log.info("reports.taken", provider=name, receipts=taken)
        if once:
            return
        await asyncio.sleep(interval)  # a poll drains what is waiting: wait for more
