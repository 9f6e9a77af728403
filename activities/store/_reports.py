"""Operators' report rows (skips, engagement) and the customers' orders."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from durable_journeys.activities.store._base import (
    StoreBase,
    _engagements,
    _messages,
    _now,
    _orders,
    _skips,
)
from durable_journeys.activities.store.records import (
    Engagement,
    MessageRecord,
    PaidOrder,
    SkipRecord,
)

# Every order's statements, built once (see _messages.py).
_o = _orders.c
_NEW_ORDER = insert(_orders)
_FIRST_ORDER = (
    select(_o.order_id).where(_o.customer_id == bindparam("p_customer_id")).order_by(_o.paid_at, _o.order_id).limit(1)
)
_ORDER_CUSTOMER = select(_o.customer_id).where(_o.order_id == bindparam("p_order_id"))


class ReportStore(StoreBase):
    """What the report reads, and which orders a customer has."""

    # operators' report ----------------------------------------------------------------------

    async def record_skip(self, *, status: str, reason: str, **fields: Any) -> None:
        """Remember that a send was skipped or deferred (the latest outcome per key wins)."""
        values = {**fields, "status": status, "reason": reason[:64], "created_at": _now()}
        try:
            async with self._write() as conn:
                await conn.execute(insert(_skips).values(values))
        except IntegrityError:
            async with self._write() as conn:
                await conn.execute(
                    update(_skips)
                    .where(_skips.c.idempotency_key == fields["idempotency_key"])
                    .values(status=status, reason=reason[:64], journey_time=fields["journey_time"])
                )

    async def record_engagement(
        self,
        customer_id: str,
        kind: str,
        at: datetime,
        *,
        step: str | None = None,
        channel: str | None = None,
        event_id: str | None = None,
    ) -> bool:
        """Remember an open or a click; False if this ``event_id`` was recorded before."""
        try:
            async with self._write() as conn:
                await conn.execute(
                    insert(_engagements).values(
                        customer_id=customer_id, kind=kind, step=step, channel=channel, event_id=event_id, at=at
                    )
                )
        except IntegrityError:
            return False
        return True

    async def report_rows(
        self, *, since: datetime, until: datetime, attribution: timedelta, journey: str | None = None
    ) -> tuple[list[MessageRecord], list[SkipRecord], list[Engagement], list[PaidOrder]]:
        """What the per-step report counts.

        Messages and skips of ``[since, until)`` (journey time), and the engagements and orders
        that may follow them within ``attribution``.
        """
        m, k = _messages.c, _skips.c
        at = func.coalesce(m.journey_time, m.created_at)
        messages = select(_messages).where(at >= since, at < until).order_by(at, m.id)
        skips = select(_skips).where(k.journey_time >= since, k.journey_time < until).order_by(k.journey_time)
        if journey is not None:
            messages = messages.where(m.journey == journey)
            skips = skips.where(k.journey == journey)
        end = until + attribution
        engagements = select(_engagements).where(_engagements.c.at >= since, _engagements.c.at < end)
        orders = select(_orders).where(_orders.c.paid_at >= since, _orders.c.paid_at < end)
        async with self.engine.connect() as conn:
            return (
                [MessageRecord.model_validate(r) for r in await conn.execute(messages)],
                [SkipRecord.model_validate(r) for r in await conn.execute(skips)],
                [Engagement.model_validate(r) for r in await conn.execute(engagements)],
                [PaidOrder.model_validate(r) for r in await conn.execute(orders)],
            )

    # orders ---------------------------------------------------------------------------------

    async def record_order(
        self, customer_id: str, order_id: str, paid_at: datetime | None = None, *, amount: int = 0
    ) -> bool:
        """Remember a paid order (``amount``: KRW, the report's revenue); True if it is the customer's first.

        The same order again gives the same answer and keeps its first amount.
        """
        try:
            async with self._lane.single_writes() as conn:
                await conn.execute(
                    _NEW_ORDER,
                    {"order_id": order_id, "customer_id": customer_id, "paid_at": paid_at or _now(), "amount": amount},
                )
        except IntegrityError:
            pass  # the same order again, or recorded concurrently: it is there now
        first = await self._lane.read(_FIRST_ORDER, {"p_customer_id": customer_id})
        return bool(first and first.order_id == order_id)

    async def order_customer(self, order_id: str) -> str | None:
        """The customer who paid ``order_id`` (None: no such order recorded)."""
        row = await self._lane.read(_ORDER_CUSTOMER, {"p_order_id": order_id})
        return None if row is None else str(row[0])

    async def customer_orders(self, customer_id: str, *, limit: int = 20) -> list[str]:
        """The customer's most recent order ids, newest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_orders.c.order_id)
                .where(_orders.c.customer_id == customer_id)
                .order_by(_orders.c.paid_at.desc(), _orders.c.order_id.desc())
                .limit(limit)
            )
            return list(rows.scalars())
