"""Seen events, event counts and webhook signatures: what keeps floods and replays out."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from durable_journeys.activities.store._base import (
    StoreBase,
    _event_counts,
    _now,
    _seen,
    _signatures,
)

# The facade's statements for every event, built once: building a Core statement (and its cache
# key) costs more CPU than SQLAlchemy's compiled cache saves (bench/README.md, change 7).
_EVENT_SEEN = select(_seen.c.event_id).where(
    _seen.c.workflow_id == bindparam("p_workflow_id"), _seen.c.event_id == bindparam("p_event_id")
)
_REMEMBER_EVENT = insert(_seen)
_c = _event_counts.c
_COUNT_KEY = (
    (_c.workflow_id == bindparam("p_workflow_id"))
    & (_c.event_type == bindparam("p_event_type"))
    & (_c.bucket == bindparam("p_bucket"))
)
_COUNT_UP = (
    update(_event_counts)
    .where(_COUNT_KEY & (_c.count < bindparam("p_limit")))
    .values(count=_c.count + 1, updated_at=bindparam("p_now"))
)
_COUNTED = select(_c.count).where(_COUNT_KEY)
_FIRST_COUNT = insert(_event_counts)
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
        row = await self._one(_EVENT_SEEN, {"p_workflow_id": workflow_id, "p_event_id": event_id})
        return row is not None

    async def remember_event(self, workflow_id: str, event_id: str) -> None:
        """Record that ``event_id`` reached ``workflow_id``.

        Called after the signal went out: an event is never lost to a crash between the two, at
        worst signalled twice, which the journey ignores.
        """
        try:
            async with self._write() as conn:
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
        if limit < 1:
            return False
        key = {"p_workflow_id": workflow_id, "p_event_type": event_type, "p_bucket": bucket}
        for _ in range(2):
            try:
                async with self._write() as conn:
                    counted = await conn.execute(_COUNT_UP, {**key, "p_limit": limit, "p_now": _now()})
                    if counted.rowcount:
                        return True
                    if (await conn.execute(_COUNTED, key)).first() is not None:
                        return False  # at the limit
                    await conn.execute(
                        _FIRST_COUNT,
                        {
                            "workflow_id": workflow_id,
                            "event_type": event_type,
                            "bucket": bucket,
                            "count": 1,
                            "updated_at": _now(),
                        },
                    )
                    return True
            except IntegrityError:
                continue  # a concurrent first event of this type: count again
        return False

    async def remember_signature(self, provider: str, signature: str, body: str, *, keep: timedelta) -> bool:
        """Remember a webhook signature (a digest) with the digest of the body it came with.

        A signature that does not cover the body (Bizgo signs only the timestamp) must not carry a
        second, different body: that is a replay. The same body again is a provider's retry.

        Returns:
            True if the signature is new, or came before with this same body; False for another body.
        """
        now = _now()
        try:
            async with self._write() as conn:
                await conn.execute(_FORGET_SIGNATURES, {"p_before": now - keep})
                await conn.execute(
                    _NEW_SIGNATURE, {"provider": provider, "signature": signature, "body": body, "seen_at": now}
                )
            return True
        except IntegrityError:
            row = await self._one(_SIGNED_BODY, {"p_provider": provider, "p_signature": signature})
            return row is not None and row[0] == body
