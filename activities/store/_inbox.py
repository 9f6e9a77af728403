"""The in-app inbox."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from durable_journeys.activities.store._base import (
    StoreBase,
    _inbox,
    _now,
)
from durable_journeys.activities.store.records import (
    InboxMessage,
)


class InboxStore(StoreBase):
    """A customer's in-app messages."""

    # in-app inbox ---------------------------------------------------------------------------

    async def add_inbox_message(
        self, *, idempotency_key: str, customer_id: str, kind: str, body: str, title: str | None = None
    ) -> int:
        """Put a message in the customer's inbox once per idempotency key; returns its id."""
        try:
            async with self._write() as conn:
                return int(
                    (
                        await conn.execute(
                            insert(_inbox)
                            .values(
                                idempotency_key=idempotency_key,
                                customer_id=customer_id,
                                kind=kind,
                                title=title,
                                body=body,
                                created_at=_now(),
                            )
                            .returning(_inbox.c.id)
                        )
                    ).scalar_one()
                )
        except IntegrityError:
            return int((await self._one(select(_inbox.c.id).where(_inbox.c.idempotency_key == idempotency_key))).id)

    async def inbox(self, customer_id: str, *, unread_only: bool = False) -> list[InboxMessage]:
        """The customer's inbox, newest first."""
        query = select(_inbox).where(_inbox.c.customer_id == customer_id)
        if unread_only:
            query = query.where(_inbox.c.read_at.is_(None))
        async with self.engine.connect() as conn:
            return [InboxMessage.model_validate(r) for r in await conn.execute(query.order_by(_inbox.c.id.desc()))]

    async def mark_inbox_read(self, customer_id: str, message_id: int) -> bool:
        """Mark one inbox message read; False if the customer has no such message."""
        mine = (_inbox.c.id == message_id) & (_inbox.c.customer_id == customer_id)
        async with self._write() as conn:
            found = (await conn.execute(select(_inbox.c.read_at).where(mine))).first()
            if found is None:
                return False
            if found.read_at is None:
                await conn.execute(update(_inbox).where(mine).values(read_at=_now()))
            return True
