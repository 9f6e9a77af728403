"""The message log and its claims (the contact policy's caps, atomically), and receipts."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from durable_journeys.activities.store._base import (
    StoreBase,
    _customers,
    _holds,
    _messages,
    _now,
    _sent_as,
)
from durable_journeys.activities.store._lane import LaneConnection
from durable_journeys.activities.store.records import (
    ContactLimits,
    ContactRefused,
    MessageRecord,
    MessageStatus,
    ReceiptRecord,
    _aware,
)
from durable_journeys.providers import DeliveryReceipt, ReceiptStatus

# How often a send held for its receipt looks for it (take_receipt): soon, then less often. The
# first look is after a pause: right after the provider's answer a receipt is almost never there
# (and one that came before the answer is found a pause later).
RECEIPT_POLL_FIRST, RECEIPT_POLL_MAX = 0.1, 0.5

# Every send's statements, built once: building a Core statement (and its cache key) for each call
# cost more CPU than SQLAlchemy's compiled cache saves (bench/README.md, change 8). Values go
# in as bind parameters (``p_*``; the others are the message log's own columns).
_m = _messages.c
_BY_KEY = _m.idempotency_key == bindparam("p_key")
_INSERT_MESSAGE = insert(_messages).returning(_messages)
_BUMP_ATTEMPTS = (
    update(_messages)
    .where(_BY_KEY)
    .values(attempts=_m.attempts + 1, updated_at=bindparam("p_now"))
    .returning(_messages)
)
# Take the customer's turn: every checked claim for this customer waits here, so its count sees
# the claim before it. (An UPDATE, not SELECT ... FOR UPDATE: SQLite has no row locks, and an
# UPDATE takes its write lock at once.)
_LOCK_CUSTOMER = (
    update(_customers)
    .where(_customers.c.customer_id == bindparam("p_customer_id"))
    .values(updated_at=_customers.c.updated_at)
)
_CLAIM_COLUMNS = (
    _m.idempotency_key,
    _m.workflow_id,
    _m.episode,
    _m.step,
    _m.channel,
    _m.purpose,
    _m.status,
    _m.receipt_status,
    _m.journey_time,
    _m.content_key,
    _m.resend_of,
)
# One read: this key's row (an earlier attempt) and, with windows, the customer's rows in them.
_CLAIM_ROWS = select(*_CLAIM_COLUMNS).where(_BY_KEY)
_CLAIM_ROWS_IN_WINDOWS = select(*_CLAIM_COLUMNS).where(
    _BY_KEY | ((_m.customer_id == bindparam("p_customer_id")) & (_m.journey_time >= bindparam("p_since")))
)
_DROP_HOLD = _holds.delete().where(_holds.c.idempotency_key == bindparam("p_key"))
_HOLD = select(_holds.c.until).where(_holds.c.idempotency_key == bindparam("p_key"))
_NEW_HOLD = insert(_holds)  # VALUES: the columns the call gives
_MESSAGE = select(_messages).where(_BY_KEY)
_RECEIPT_STATUS = select(_m.receipt_status).where(_BY_KEY)
_HAND_OVER = (
    update(_messages).where(_BY_KEY, _m.receipt_awaited.is_(False)).values(receipt_awaited=True).returning(_messages)
)
_FINISH = update(_messages).where(_BY_KEY)  # SET: the columns the call gives


class MessageLog(StoreBase):
    """One row per message, claimed before it is sent; receipts settle it."""

    # message log ----------------------------------------------------------------------------

    async def claim_message(self, *, limits: ContactLimits | None = None, **fields: Any) -> tuple[MessageRecord, bool]:
        """Insert a ``sending`` row under a unique idempotency key.

        With ``limits``, a new row is inserted only if the customer's frequency caps and
        duplicate-content window allow it, decided under a lock on the customer's row (on
        PostgreSQL and SQLite alike): two claims racing for a window's last slot cannot both pass.
        An existing row (an earlier attempt) is never refused.

        Returns:
            The row and whether this call created it. An existing row means an earlier
            attempt got this far: the caller must not send blindly.

        Raises:
            ContactRefused: the contact policy refused a new claim (nothing was inserted).
        """
        now = _now()
        values = {
            "status": MessageStatus.SENDING.value,
            "attempts": 1,
            "superseded": False,
            "receipt_late": False,
            "created_at": now,
            "updated_at": now,
            **fields,
        }
        if limits is not None:
            return await self._claim_within(limits, values)
        try:
            async with self._lane.write() as conn:
                row = (await conn.execute(_INSERT_MESSAGE, values))[0]
            return MessageRecord.model_validate(row), True
        except IntegrityError:
            pass
        async with self._lane.write() as conn:
            row = (await conn.execute(_BUMP_ATTEMPTS, {"p_key": fields["idempotency_key"], "p_now": now}))[0]
            return MessageRecord.model_validate(row), False

    async def _claim_within(self, limits: ContactLimits, values: dict[str, Any]) -> tuple[MessageRecord, bool]:
        key = values["idempotency_key"]
        values.setdefault("content_key", limits.content_key)
        at: datetime = values["journey_time"]
        windows = [c.window for c in limits.caps if limits.advertising and c.limit > 0]
        if limits.content_key and limits.duplicate_window:
            windows.append(limits.duplicate_window)
        refusal: ContactRefused | None = None
        async with self._lane.write() as conn:
            # The customer's row first: the claims for this customer take their turns.
            await conn.execute(_LOCK_CUSTOMER, {"p_customer_id": values["customer_id"]})
            if windows:
                params = {"p_key": key, "p_customer_id": values["customer_id"], "p_since": at - max(windows)}
                rows = await conn.execute(_CLAIM_ROWS_IN_WINDOWS, params)
            else:
                rows = await conn.execute(_CLAIM_ROWS, {"p_key": key})
            if any(r.idempotency_key == key for r in rows):
                existing = (await conn.execute(_BUMP_ATTEMPTS, {"p_key": key, "p_now": values["updated_at"]}))[0]
                return MessageRecord.model_validate(existing), False
            refusal = await self._contact_refusal(conn, limits, values, rows)
            if refusal is None:
                row = (await conn.execute(_INSERT_MESSAGE, values))[0]
                if limits.priority_grace:  # a hold this claim waited out is done with
                    await conn.execute(_DROP_HOLD, {"p_key": key})
                return MessageRecord.model_validate(row), True
        raise refusal  # after the commit: a priority hold it made is kept

    @staticmethod
    async def _contact_refusal(
        conn: LaneConnection, limits: ContactLimits, values: dict[str, Any], rows: Sequence[Any]
    ) -> ContactRefused | None:
        """Why the contact policy refuses this new claim now, or None (the customer's row is locked).

        ``rows``: the customer's messages in the longest window.
        """
        at: datetime = values["journey_time"]
        # An operator's resend is a message of its own: its step's first send counts against it,
        # and it counts against every later ad (``_sent_as``).
        own = None if values.get("resend_of") else (values["workflow_id"], values.get("episode"), values["step"], "")
        others = [
            r
            for r in rows
            if _sent_as(r) != own
            and r.status != MessageStatus.REJECTED.value
            and r.receipt_status != ReceiptStatus.FAILED.value
        ]
        if limits.content_key and limits.duplicate_window:
            since = at - limits.duplicate_window
            if any(r.content_key == limits.content_key and _aware(r.journey_time) >= since for r in others):
                return ContactRefused("duplicate_content")
        if not limits.advertising:
            return None
        free_at: datetime | None = None
        fills_last = False
        customer_wide = False  # a cap over every channel is full (else only this channel's)
        for cap in limits.caps:
            if cap.limit <= 0:
                continue
            since = at - cap.window
            steps: dict[tuple[str, str | None, str, str], datetime] = {}
            for r in others:
                sent = _aware(r.journey_time)
                if r.purpose == "advertising" and sent >= since and cap.channel in (None, r.channel):
                    step = _sent_as(r)
                    steps[step] = min(sent, steps.get(step, sent))
            times = sorted(steps.values())
            if len(times) >= cap.limit:
                # The window frees when enough of its oldest steps have left it.
                frees = times[len(times) - cap.limit] + cap.window + timedelta(seconds=1)
                free_at = frees if free_at is None else max(free_at, frees)
                customer_wide = customer_wide or cap.channel is None
            elif len(times) + 1 == cap.limit:
                fills_last = True
        if free_at is not None:
            return ContactRefused("frequency_cap" if customer_wide else "channel_frequency_cap", free_at)
        if fills_last and limits.priority_grace:
            key = values["idempotency_key"]
            holds = await conn.execute(_HOLD, {"p_key": key})
            if not holds:
                until = at + limits.priority_grace
                await conn.execute(
                    _NEW_HOLD,
                    {
                        "idempotency_key": key,
                        "customer_id": values["customer_id"],
                        "until": until,
                        "created_at": _now(),
                    },
                )
                return ContactRefused("priority_grace", until)
            if at < _aware(holds[0].until):
                return ContactRefused("priority_grace", _aware(holds[0].until))
        return None

    async def get_message(self, idempotency_key: str) -> MessageRecord | None:
        """The logged message with this key, or None."""
        row = await self._lane.read(_MESSAGE, {"p_key": idempotency_key})
        return None if row is None else MessageRecord.model_validate(row)

    async def take_receipt(self, idempotency_key: str, *, grace: float) -> MessageRecord | None:
        """A held message's receipt if it comes within ``grace`` seconds; else hand it to the webhook app.

        A message claimed with ``receipt_awaited=False`` is *held*: its receipt, if the webhook
        app records one meanwhile, is only logged. This waits (polling the row) up to ``grace``
        seconds for it, then sets ``receipt_awaited`` in one statement: a receipt recorded
        before that statement is returned here (the journey learns it from the send's answer,
        no signal), one recorded after it is signalled by the webhook app. Row-level atomicity
        decides which, so a receipt is told exactly once either way.

        Returns:
            The message with its receipt, or None: no receipt yet (the journey waits for its signal).
        """
        key = {"p_key": idempotency_key}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        pause = RECEIPT_POLL_FIRST
        # Polls only while time is left after a pause: the hand-over's RETURNING reads the row at the end anyway.
        while deadline - loop.time() > pause:
            await asyncio.sleep(pause)
            row = await self._lane.read(_RECEIPT_STATUS, key)
            if row is None or row.receipt_status is not None:
                break
            pause = min(pause * 2, RECEIPT_POLL_MAX)
        else:
            await asyncio.sleep(max(0.0, deadline - loop.time()))  # the rest of the grace
        async with self._lane.single_writes() as conn:
            rows = await conn.execute(_HAND_OVER, key)
            if not rows:  # handed off already (an earlier attempt), or never held
                rows = await conn.execute(_MESSAGE, key)
        row = rows[0] if rows else None
        if row is None or row.receipt_status is None:
            return None
        return MessageRecord.model_validate(row)

    async def finish_message(self, idempotency_key: str, status: MessageStatus, **fields: Any) -> None:
        """Record the provider's answer for a claimed row."""
        async with self._lane.single_writes() as conn:
            await conn.execute(
                _FINISH, {"p_key": idempotency_key, "status": status.value, "updated_at": _now(), **fields}
            )

    async def mark_superseded(self, idempotency_keys: list[str]) -> None:
        """The journey moved on to another channel: later receipts for these are late."""
        if not idempotency_keys:
            return
        async with self._write() as conn:
            await conn.execute(
                update(_messages)
                .where(_messages.c.idempotency_key.in_(idempotency_keys))
                .values(superseded=True, updated_at=_now())
            )

    async def record_receipt(self, receipt: DeliveryReceipt) -> ReceiptRecord | None:
        """Attach a delivery receipt to its message; None when no message matches.

        The same receipt twice changes nothing and is reported as a duplicate.
        """
        return (await self.record_receipts([receipt]))[0]

    async def record_receipts(self, receipts: Sequence[DeliveryReceipt]) -> list[ReceiptRecord | None]:
        """:meth:`record_receipt` for a provider's batch, in one transaction (answers in batch order).

        Rows are locked in key order, so two batches that share messages cannot deadlock.
        """
        order = sorted(
            range(len(receipts)),
            key=lambda i: (receipts[i].idempotency_key or "", receipts[i].provider_message_id or ""),
        )
        records: list[ReceiptRecord | None] = [None] * len(receipts)
        async with self._lane.write() as conn:
            for i in order:
                records[i] = await self._record_receipt(conn, receipts[i])
        return records

    async def _record_receipt(self, conn: LaneConnection, receipt: DeliveryReceipt) -> ReceiptRecord | None:
        if not (receipt.idempotency_key or receipt.provider_message_id):
            return None
        now = _now()
        settle, matching = _receipt_statements(
            by_key=bool(receipt.idempotency_key),
            with_id=bool(receipt.provider_message_id),
            chain_failure=receipt.status is ReceiptStatus.FAILED and receipt.channel is not None,
        )
        params = {
            "p_provider": receipt.provider,
            "p_key": receipt.idempotency_key,
            "p_message_id": receipt.provider_message_id,
            "p_channel": receipt.channel.value if receipt.channel else None,
        }
        # One statement in the common case: the first receipt for a message.
        rows = await conn.execute(
            settle,
            {
                **params,
                "receipt_status": receipt.status.value,
                "receipt_error_code": receipt.error_code,
                "receipt_channel": params["p_channel"],
                "receipt_at": receipt.occurred_at or now,
                "updated_at": now,
            },
        )
        duplicate = not rows
        if duplicate:
            rows = await conn.execute(matching, params)
            if not rows:
                return None
        row = rows[0]
        message = MessageRecord.model_validate(row)
        interim = duplicate and message.receipt_status is None  # an earlier channel of a chain failed
        return ReceiptRecord(
            message=message, duplicate=duplicate and not interim, late=message.receipt_late, interim=interim
        )

    async def messages(self, *, workflow_id: str | None = None, customer_id: str | None = None) -> list[MessageRecord]:
        """Logged messages, oldest first."""
        query = select(_messages).order_by(_messages.c.id)
        if workflow_id is not None:
            query = query.where(_messages.c.workflow_id == workflow_id)
        if customer_id is not None:
            query = query.where(_messages.c.customer_id == customer_id)
        async with self.engine.connect() as conn:
            return [MessageRecord.model_validate(r) for r in await conn.execute(query)]

    async def sent_in_other_episode(self, workflow_id: str, episode: str | None, *, since: datetime) -> bool:
        """Whether another run chain of ``workflow_id`` had a message accepted since ``since``.

        ``since`` is journey time: re-entry cooldowns across runs of a journey whose id is reused.
        """
        m = _messages.c
        query = (
            select(func.count())
            .select_from(_messages)
            .where(m.workflow_id == workflow_id, m.status == MessageStatus.ACCEPTED.value, m.journey_time >= since)
        )
        if episode is not None:
            query = query.where((m.episode != episode) | m.episode.is_(None))
        return bool((await self._one(query))[0])


@functools.cache
def _receipt_statements(*, by_key: bool, with_id: bool, chain_failure: bool) -> tuple[Any, Any]:
    """The statements that settle a receipt's message and read it, for the receipt's shape (built once each).

    A receipt settles a message only of the provider that reported it, and only when it names the
    provider's message id logged at send time, exactly (if one was logged): a key alone is guessable.
    """
    m = _messages.c
    match = m.provider == bindparam("p_provider")
    if by_key:
        match &= _BY_KEY
        if with_id:
            match &= m.provider_message_id.is_(None) | (m.provider_message_id == bindparam("p_message_id"))
        else:
            match &= m.provider_message_id.is_(None)
    else:
        match &= m.provider_message_id == bindparam("p_message_id")
    final = match & m.receipt_status.is_(None)
    if chain_failure:
        # In a gateway chain only the last channel's failure is final: the provider tries the next.
        final &= m.final_channel.is_(None) | (m.final_channel == bindparam("p_channel"))
    settle = (
        update(_messages)
        .where(final)
        .values(
            receipt_late=m.superseded,
            provider_message_id=func.coalesce(m.provider_message_id, bindparam("p_message_id")),
        )
        .returning(_messages)
    )  # SET also: the receipt's columns, given with the call
    return settle, select(_messages).where(match)
