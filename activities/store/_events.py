"""Seen events, event counts and webhook signatures: what keeps floods and replays out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from durable_journeys.activities.store._base import (
    StoreBase,
    _event_counts,
    _now,
    _seen,
    _signatures,
)
from durable_journeys.activities.store._lane import LaneConnection
from durable_journeys.activities.store.records import EventAdmission

# The facade's statements for every event, built once: building a Core statement (and its cache
# key) costs more CPU than SQLAlchemy's compiled cache saves (bench/README.md, change 8).
_EVENT_SEEN = select(_seen.c.event_id).where(
    _seen.c.workflow_id == bindparam("p_workflow_id"), _seen.c.event_id == bindparam("p_event_id")
)
_REMEMBER_EVENT = insert(_seen)


def _count_one_more(dialect_insert: Any) -> Any:
    """One statement: the first event of its type counts 1, a later one adds 1 while under the limit.

    Returns the new count, or no row at the limit. (An upsert: PostgreSQL and SQLite spell it alike.)
    """
    c = _event_counts.c
    first = dialect_insert(_event_counts).values(
        workflow_id=bindparam("p_workflow_id"),
        event_type=bindparam("p_event_type"),
        bucket=bindparam("p_bucket"),
        count=1,
        updated_at=bindparam("p_now"),
    )
    return first.on_conflict_do_update(
        index_elements=[c.workflow_id, c.event_type, c.bucket],
        set_={"count": c.count + 1, "updated_at": first.excluded.updated_at},
        where=c.count < bindparam("p_limit"),
    ).returning(c.count)


_COUNT_ONE_MORE = {"postgresql": _count_one_more(postgresql.insert), "sqlite": _count_one_more(sqlite.insert)}
_s = _signatures.c
_FORGET_SIGNATURES = delete(_signatures).where(_s.seen_at < bindparam("p_before"))
_NEW_SIGNATURE = insert(_signatures)
_SIGNED_BODY = select(_s.body).where(_s.provider == bindparam("p_provider"), _s.signature == bindparam("p_signature"))


class EventStore(StoreBase):
    """Events seen and counted per journey; signatures remembered per provider."""

    # events ---------------------------------------------------------------------------------

    async def event_seen(self, workflow_id: str, event_id: str) -> bool:
        """Whether ``event_id`` was already signalled to ``workflow_id``.

        A redelivered event is dropped before it is signalled: it would only add to the
        journey's history, which has a size limit.
        """
        row = await self._lane.read(_EVENT_SEEN, {"p_workflow_id": workflow_id, "p_event_id": event_id})
        return row is not None

    async def admit_event(
        self, workflow_id: str, event_id: str | None, event_type: str, *, limit: int | None, bucket: str = ""
    ) -> EventAdmission:
        """Whether the facade may signal an event to ``workflow_id``: both checks in one transaction.

        ``SEEN``: ``event_id`` was signalled to the journey before (:meth:`event_seen`). ``LIMITED``:
        the journey took ``limit`` events of ``event_type`` (in ``bucket``) already. ``ADMITTED``:
        neither, and the event is counted (:meth:`count_event`); ``limit`` None counts nothing.
        """
        if limit is None:
            if event_id is not None and await self.event_seen(workflow_id, event_id):
                return EventAdmission.SEEN
            return EventAdmission.ADMITTED
        async with self._lane.single_writes() as conn:  # seen, then counted: no invariant across the two
            if event_id is not None:
                if await conn.execute(_EVENT_SEEN, {"p_workflow_id": workflow_id, "p_event_id": event_id}):
                    return EventAdmission.SEEN
            if not await self._count(conn, workflow_id, event_type, limit=limit, bucket=bucket):
                return EventAdmission.LIMITED
            return EventAdmission.ADMITTED

    async def remember_event(self, workflow_id: str, event_id: str) -> None:
        """Record that ``event_id`` reached ``workflow_id``.

        Called after the signal went out: an event is never lost to a crash between the two, at
        worst signalled twice, which the journey ignores.
        """
        try:
            async with self._lane.single_writes() as conn:
                await conn.execute(
                    _REMEMBER_EVENT, {"workflow_id": workflow_id, "event_id": event_id, "created_at": _now()}
                )
        except IntegrityError:
            pass  # remembered already (a concurrent redelivery)

    async def count_event(self, workflow_id: str, event_type: str, *, limit: int, bucket: str = "") -> bool:
        """Count one more event of ``event_type`` for ``workflow_id`` (in ``bucket``) unless ``limit`` is reached.

        Returns:
            True if it was counted (the event may be signalled), False if the limit was reached.
        """
        async with self._lane.single_writes() as conn:
            return await self._count(conn, workflow_id, event_type, limit=limit, bucket=bucket)

    @staticmethod
    async def _count(conn: LaneConnection, workflow_id: str, event_type: str, *, limit: int, bucket: str) -> bool:
        if limit < 1:
            return False
        params = {
            "p_workflow_id": workflow_id,
            "p_event_type": event_type,
            "p_bucket": bucket,
            "p_limit": limit,
            "p_now": _now(),
        }
        return bool(await conn.execute(_COUNT_ONE_MORE[conn.dialect.name], params))

    async def remember_signature(self, provider: str, signature: str, body: str, *, keep: timedelta) -> bool:
        """Remember a webhook signature (a digest) with the digest of the body it came with.

        A signature that does not cover the body (Bizgo signs only the timestamp) must not carry a
        second, different body: that is a replay. The same body again is a provider's retry.

        Returns:
            True if the signature is new, or came before with this same body; False for another body.
        """
        now = _now()
        try:
            async with self._lane.write() as conn:
                await conn.execute(_FORGET_SIGNATURES, {"p_before": now - keep})
                await conn.execute(
                    _NEW_SIGNATURE, {"provider": provider, "signature": signature, "body": body, "seen_at": now}
                )
            return True
        except IntegrityError:
            row = await self._lane.read(_SIGNED_BODY, {"p_provider": provider, "p_signature": signature})
            return row is not None and row[0] == body
