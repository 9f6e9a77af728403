"""The customer store and message log on SQLAlchemy 2 async (SQLite file or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Table, delete, event, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from durable_journeys.activities.customers import CustomerProfile
from durable_journeys.activities.store._tables import (
    ContactHoldRow,
    CustomerRow,
    EngagementRow,
    EventCountRow,
    InboxRow,
    MessageRow,
    OrderRow,
    SeenEventRow,
    SendSkipRow,
    WebhookSignatureRow,
)
from durable_journeys.providers import DeliveryReceipt, ReceiptStatus

# Core statements on the tables: the store writes one row per call and maps rows to pydantic
# models itself, so the ORM's unit of work is overhead it does not need (about 10 % of a
# send's database CPU; see bench/README.md).
_customers = cast(Table, CustomerRow.__table__)
_messages = cast(Table, MessageRow.__table__)
_orders = cast(Table, OrderRow.__table__)
_inbox = cast(Table, InboxRow.__table__)
_seen = cast(Table, SeenEventRow.__table__)
_holds = cast(Table, ContactHoldRow.__table__)
_skips = cast(Table, SendSkipRow.__table__)
_engagements = cast(Table, EngagementRow.__table__)
_event_counts = cast(Table, EventCountRow.__table__)
_signatures = cast(Table, WebhookSignatureRow.__table__)
_MIGRATIONS = Path(__file__).parent / "migrations"


class MessageStatus(StrEnum):
    """Where a logged message stands."""

    SENDING = "sending"  # claimed; the provider call may or may not have happened
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # the provider call's outcome is unknown: reconcile before resending


class MessageRecord(BaseModel):
    """One row of the message log."""

    model_config = ConfigDict(from_attributes=True)

    idempotency_key: str
    workflow_id: str
    step: str
    channel: str
    customer_id: str
    provider: str
    purpose: str
    template: str
    status: MessageStatus
    attempts: int
    provider_message_id: str | None = None
    receipt_mode: str | None = None
    error_class: str | None = None
    error_code: str | None = None
    superseded: bool = False
    receipt_status: str | None = None
    receipt_error_code: str | None = None
    receipt_at: datetime | None = None
    receipt_late: bool = False
    journey_time: datetime | None = None
    episode: str | None = None
    final_channel: str | None = None
    receipt_channel: str | None = None
    journey: str | None = None
    resend_of: str | None = None
    created_at: datetime

    @field_validator("receipt_at", "journey_time", "created_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Times are aware on every database (SQLite returns naive UTC)."""
        return None if value is None else _aware(value)


class Cap(BaseModel):
    """At most ``limit`` advertising steps per customer in a rolling ``window`` (on ``channel``, or overall)."""

    model_config = ConfigDict(frozen=True)

    limit: int
    window: timedelta
    channel: str | None = None


class ContactLimits(BaseModel):
    """What a new claim must respect, checked in the same transaction as the claim.

    Counted are the customer's messages of *other* steps that went out or may have (not
    rejected, no failed receipt), by journey time. A step counts once however many of its
    channels were tried.
    """

    advertising: bool
    caps: list[Cap] = Field(default_factory=list)
    content_key: str | None = None
    duplicate_window: timedelta | None = None
    priority_grace: timedelta | None = Field(
        default=None,
        description="set for a journey below the top priority: before its ad takes the last slot of a "
        "window it waits this long, so a higher-priority ad that comes meanwhile takes the slot",
    )


class ContactRefused(Exception):  # noqa: N818 - a refusal, not a failure
    """A new claim the contact policy refused; nothing was inserted.

    ``reason`` is ``duplicate_content``, ``frequency_cap`` (the customer's cap over every channel),
    ``channel_frequency_cap`` (only this channel's) or ``priority_grace``; ``not_before``
    is when the same claim could pass (caps and holds).
    """

    def __init__(self, reason: str, not_before: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.not_before = not_before


class InboxMessage(BaseModel):
    """One message of a customer's in-app inbox."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    title: str | None = None
    body: str
    created_at: datetime
    read_at: datetime | None = None


def _stored_time(value: datetime) -> datetime:
    """A stored time as an aware datetime (SQLite returns naive UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


StoredTime = Annotated[datetime, AfterValidator(_stored_time)]


class SkipRecord(BaseModel):
    """A send the policy or the profile ruled out (skipped) or put off (deferred): its latest such outcome."""

    model_config = ConfigDict(from_attributes=True)

    idempotency_key: str
    workflow_id: str
    journey: str
    step: str
    channel: str
    customer_id: str
    status: str
    reason: str
    journey_time: StoredTime


class Engagement(BaseModel):
    """A customer opened or clicked a message."""

    model_config = ConfigDict(from_attributes=True)

    customer_id: str
    kind: str
    step: str | None = None
    channel: str | None = None
    at: StoredTime


class PaidOrder(BaseModel):
    """An order, as the report attributes it."""

    model_config = ConfigDict(from_attributes=True)

    order_id: str
    customer_id: str
    paid_at: StoredTime


class ReceiptRecord(BaseModel):
    """What recording a receipt found."""

    message: MessageRecord
    duplicate: bool
    late: bool
    interim: bool = False  # a gateway chain's earlier channel failed: the provider tries the next


def _now() -> datetime:
    return datetime.now(UTC)


def _sent_as(row: Any) -> tuple[str, str | None, str, str]:
    """What one message counts as against the caps: its step (once for all its channels), or a resend on its own."""
    return (row.workflow_id, row.episode, row.step, row.idempotency_key if row.resend_of else "")


_aware = _stored_time


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the webhook app record a receipt while a worker writes the log.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# Any fixed number: it names this project's migration lock among the database's advisory locks.
_MIGRATION_LOCK_ID = 7_213_300_011


def _lock_for_migration(sync_conn: Any) -> None:
    """Hold the database's migration lock until the transaction ends."""
    if sync_conn.dialect.name == "postgresql":
        sync_conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    elif sync_conn.dialect.name == "sqlite":
        # A write takes SQLite's one write lock for the rest of the transaction; the others wait
        # for it (busy_timeout) and then see the schema the first one made.
        sync_conn.execute(text("CREATE TABLE IF NOT EXISTS journeys_migration_lock (id INTEGER)"))
        sync_conn.execute(text("DELETE FROM journeys_migration_lock"))


class Store:
    """Customers and the message log.

    Every method is one short transaction: no transaction is held across a provider call.

    Args:
        engine: an async engine (``sqlite+aiosqlite:///journeys.db`` or ``postgresql+asyncpg://``).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite has one writer at a time: queue writers here instead of in busy-waiting
        # threads that each hold a pooled connection. PostgreSQL needs no such lock.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @classmethod
    def from_url(cls, url: str, *, connect_timeout: float = 10.0, **engine_kwargs: Any) -> Store:
        """Build a store for a database URL.

        Args:
            url: ``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://user@host/db``.
            connect_timeout: seconds to wait for a database server that accepts but never answers.
            **engine_kwargs: passed to ``create_async_engine``.
        """
        # Statement parameters (names, message bodies) never reach an exception or a log line.
        engine_kwargs.setdefault("hide_parameters", True)
        if url.startswith("postgresql+asyncpg"):  # a server that accepts but never answers: give up
            engine_kwargs.setdefault("connect_args", {}).setdefault("timeout", connect_timeout)
        engine = create_async_engine(url, **engine_kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return cls(engine)

    async def migrate(self) -> None:
        """Bring the schema up to the newest Alembic revision.

        Safe when several processes start at once on a fresh database: each migrates under a
        lock held for its transaction (a PostgreSQL advisory lock; SQLite's write lock), so the
        first one migrates and the others find the schema current.
        """
        from alembic import command  # loaded by the processes that migrate, not by every import
        from alembic.config import Config

        def upgrade(sync_conn: Any) -> None:
            _lock_for_migration(sync_conn)
            cfg = Config()
            cfg.set_main_option("script_location", str(_MIGRATIONS))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)

    async def close(self) -> None:
        """Release every pooled connection."""
        await self.engine.dispose()

    async def _one(self, statement: Any) -> Any:
        """The first row of a read, or None."""
        async with self.engine.connect() as conn:
            return (await conn.execute(statement)).first()

    # customers ------------------------------------------------------------------------------

    async def upsert_customer(self, profile: CustomerProfile) -> bool:
        """Create or replace a profile; dead addresses still in use stay dead.

        Consent notices stay for consents that have not been given again since.

        Returns:
            Whether the customer's ad consents changed (or the customer is new with some).
        """
        data = profile.model_dump(mode="json", exclude={"dead_addresses", "consent_notices"})
        now = _now()
        key = _customers.c.customer_id == profile.customer_id
        for _ in range(3):
            try:
                async with self._write() as conn:
                    row = (
                        await conn.execute(
                            select(_customers.c.profile, _customers.c.dead_addresses, _customers.c.consent_notices)
                            .where(key)
                            .with_for_update()
                        )
                    ).first()
                    if row is None:
                        await conn.execute(
                            insert(_customers).values(
                                customer_id=profile.customer_id,
                                profile=data,
                                dead_addresses=[],
                                consent_notices={},
                                created_at=now,
                                updated_at=now,
                            )
                        )
                        return bool(profile.marketing_consent)
                    addresses = {profile.phone, profile.email, *profile.push_tokens}
                    consents = {c.value: t for c, t in profile.marketing_consent.items()}
                    notices = {
                        channel: at
                        for channel, at in (row.consent_notices or {}).items()
                        if channel in consents and consents[channel] <= datetime.fromisoformat(at)
                    }
                    await conn.execute(
                        update(_customers)
                        .where(key)
                        .values(
                            profile=data,
                            dead_addresses=[a for a in row.dead_addresses if a in addresses],
                            consent_notices=notices,
                            updated_at=now,
                        )
                    )
                    return bool((row.profile or {}).get("marketing_consent") != data["marketing_consent"])
            except IntegrityError:  # a concurrent insert (another process) won: update theirs
                continue
        return False

    async def record_consent_notice(self, customer_id: str, channel: str, at: datetime) -> None:
        """The biennial consent notice for ``channel`` reached the customer at ``at`` (journey time)."""
        key = _customers.c.customer_id == customer_id
        async with self._write() as conn:
            row = (await conn.execute(select(_customers.c.consent_notices).where(key).with_for_update())).first()
            if row is None:
                return
            notices = {**(row.consent_notices or {}), channel: at.astimezone(UTC).isoformat()}
            await conn.execute(update(_customers).where(key).values(consent_notices=notices, updated_at=_now()))

    async def get_customer(self, customer_id: str) -> CustomerProfile | None:
        """The current profile, or None."""
        c = _customers.c
        row = await self._one(
            select(c.profile, c.dead_addresses, c.consent_notices).where(c.customer_id == customer_id)
        )
        if row is None:
            return None
        return CustomerProfile.model_validate(
            {**row.profile, "dead_addresses": row.dead_addresses, "consent_notices": row.consent_notices or {}}
        )

    @staticmethod
    async def _locked_dead_addresses(conn: AsyncConnection, customer_id: str) -> list[str] | None:
        """The customer's dead addresses, row locked for this transaction; None if no such customer."""
        return (
            await conn.execute(
                select(_customers.c.dead_addresses).where(_customers.c.customer_id == customer_id).with_for_update()
            )
        ).scalar_one_or_none()

    async def mark_address_dead(self, customer_id: str, address: str) -> None:
        """Remember that ``address`` no longer reaches the customer (hard bounce, dead token)."""
        key = _customers.c.customer_id == customer_id
        async with self._write() as conn:
            dead = await self._locked_dead_addresses(conn, customer_id)
            if dead is not None and address not in dead:
                await conn.execute(
                    update(_customers).where(key).values(dead_addresses=[*dead, address], updated_at=_now())
                )

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
            async with self._write() as conn:
                row = (await conn.execute(insert(_messages).values(values).returning(_messages))).one()
            return MessageRecord.model_validate(row), True
        except IntegrityError:
            pass
        key = _messages.c.idempotency_key == fields["idempotency_key"]
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(_messages)
                    .where(key)
                    .values(attempts=_messages.c.attempts + 1, updated_at=now)
                    .returning(_messages)
                )
            ).one()
            return MessageRecord.model_validate(row), False

    async def _claim_within(self, limits: ContactLimits, values: dict[str, Any]) -> tuple[MessageRecord, bool]:
        m = _messages.c
        key = values["idempotency_key"]
        values.setdefault("content_key", limits.content_key)
        at: datetime = values["journey_time"]
        windows = [c.window for c in limits.caps if limits.advertising and c.limit > 0]
        if limits.content_key and limits.duplicate_window:
            windows.append(limits.duplicate_window)
        refusal: ContactRefused | None = None
        async with self._write() as conn:
            # Lock the customer's row first: every checked claim for this customer takes its turn
            # here, so its count sees the claim before it. (An UPDATE, not SELECT ... FOR UPDATE:
            # SQLite has no row locks, and an UPDATE takes its write lock at once.)
            await conn.execute(
                update(_customers)
                .where(_customers.c.customer_id == values["customer_id"])
                .values(updated_at=_customers.c.updated_at)
            )
            # One read: this key's row (an earlier attempt) and the customer's rows in the windows.
            wanted = m.idempotency_key == key
            if windows:
                wanted |= (m.customer_id == values["customer_id"]) & (m.journey_time >= at - max(windows))
            rows = list(
                await conn.execute(
                    select(
                        m.idempotency_key,
                        m.workflow_id,
                        m.episode,
                        m.step,
                        m.channel,
                        m.purpose,
                        m.status,
                        m.receipt_status,
                        m.journey_time,
                        m.content_key,
                        m.resend_of,
                    ).where(wanted)
                )
            )
            if any(r.idempotency_key == key for r in rows):
                existing = (
                    await conn.execute(
                        update(_messages)
                        .where(m.idempotency_key == key)
                        .values(attempts=m.attempts + 1, updated_at=values["updated_at"])
                        .returning(_messages)
                    )
                ).one()
                return MessageRecord.model_validate(existing), False
            refusal = await self._contact_refusal(conn, limits, values, rows)
            if refusal is None:
                row = (await conn.execute(insert(_messages).values(values).returning(_messages))).one()
                if limits.priority_grace:  # a hold this claim waited out is done with
                    await conn.execute(_holds.delete().where(_holds.c.idempotency_key == key))
                return MessageRecord.model_validate(row), True
        raise refusal  # after the commit: a priority hold it made is kept

    @staticmethod
    async def _contact_refusal(
        conn: AsyncConnection, limits: ContactLimits, values: dict[str, Any], rows: Sequence[Any]
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
            hold = (await conn.execute(select(_holds.c.until).where(_holds.c.idempotency_key == key))).first()
            if hold is None:
                until = at + limits.priority_grace
                await conn.execute(
                    insert(_holds).values(
                        idempotency_key=key, customer_id=values["customer_id"], until=until, created_at=_now()
                    )
                )
                return ContactRefused("priority_grace", until)
            if at < _aware(hold.until):
                return ContactRefused("priority_grace", _aware(hold.until))
        return None

    async def get_message(self, idempotency_key: str) -> MessageRecord | None:
        """The logged message with this key, or None."""
        row = await self._one(select(_messages).where(_messages.c.idempotency_key == idempotency_key))
        return None if row is None else MessageRecord.model_validate(row)

    async def finish_message(self, idempotency_key: str, status: MessageStatus, **fields: Any) -> None:
        """Record the provider's answer for a claimed row."""
        async with self._write() as conn:
            await conn.execute(
                update(_messages)
                .where(_messages.c.idempotency_key == idempotency_key)
                .values(status=status.value, updated_at=_now(), **fields)
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
        async with self._write() as conn:
            for i in order:
                records[i] = await self._record_receipt(conn, receipts[i])
        return records

    async def _record_receipt(self, conn: AsyncConnection, receipt: DeliveryReceipt) -> ReceiptRecord | None:
        m = _messages.c
        # A receipt settles a message only of the provider that reported it, and only when it
        # names the provider's message id logged at send time, exactly (if one was logged): a
        # key alone is guessable.
        if receipt.idempotency_key:
            match = (m.provider == receipt.provider) & (m.idempotency_key == receipt.idempotency_key)
            if receipt.provider_message_id:
                match &= m.provider_message_id.is_(None) | (m.provider_message_id == receipt.provider_message_id)
            else:
                match &= m.provider_message_id.is_(None)
        elif receipt.provider_message_id:
            match = (m.provider == receipt.provider) & (m.provider_message_id == receipt.provider_message_id)
        else:
            return None
        now = _now()
        final = match & m.receipt_status.is_(None)
        if receipt.status is ReceiptStatus.FAILED and receipt.channel is not None:
            # In a gateway chain only the last channel's failure is final: the provider tries the next.
            final &= m.final_channel.is_(None) | (m.final_channel == receipt.channel.value)
        # One statement in the common case: the first receipt for a message.
        row = (
            await conn.execute(
                update(_messages)
                .where(final)
                .values(
                    receipt_status=receipt.status.value,
                    receipt_error_code=receipt.error_code,
                    receipt_channel=receipt.channel.value if receipt.channel else None,
                    receipt_at=receipt.occurred_at or now,
                    receipt_late=m.superseded,
                    provider_message_id=func.coalesce(m.provider_message_id, receipt.provider_message_id),
                    updated_at=now,
                )
                .returning(_messages)
            )
        ).first()
        duplicate = row is None
        if duplicate:
            row = (await conn.execute(select(_messages).where(match))).first()
            if row is None:
                return None
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

    async def record_order(self, customer_id: str, order_id: str, paid_at: datetime | None = None) -> bool:
        """Remember a paid order; True if it is the customer's first (the same order again: same answer)."""
        try:
            async with self._write() as conn:
                await conn.execute(
                    insert(_orders).values(order_id=order_id, customer_id=customer_id, paid_at=paid_at or _now())
                )
        except IntegrityError:
            pass  # the same order again, or recorded concurrently: it is there now
        first = await self._one(
            select(_orders.c.order_id)
            .where(_orders.c.customer_id == customer_id)
            .order_by(_orders.c.paid_at, _orders.c.order_id)
            .limit(1)
        )
        return bool(first and first.order_id == order_id)

    async def order_customer(self, order_id: str) -> str | None:
        """The customer who paid ``order_id`` (None: no such order recorded)."""
        row = await self._one(select(_orders.c.customer_id).where(_orders.c.order_id == order_id))
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

    # events ---------------------------------------------------------------------------------

    async def event_seen(self, workflow_id: str, event_id: str) -> bool:
        """Whether ``event_id`` was already signalled to ``workflow_id``.

        A redelivered event is dropped before it is signalled: it would only add to the
        journey's history, which has a size limit.
        """
        row = await self._one(
            select(_seen.c.event_id).where(_seen.c.workflow_id == workflow_id, _seen.c.event_id == event_id)
        )
        return row is not None

    async def remember_event(self, workflow_id: str, event_id: str) -> None:
        """Record that ``event_id`` reached ``workflow_id``.

        Called after the signal went out: an event is never lost to a crash between the two, at
        worst signalled twice, which the journey ignores.
        """
        try:
            async with self._write() as conn:
                await conn.execute(insert(_seen).values(workflow_id=workflow_id, event_id=event_id, created_at=_now()))
        except IntegrityError:
            pass  # remembered already (a concurrent redelivery)

    async def count_event(self, workflow_id: str, event_type: str, *, limit: int, bucket: str = "") -> bool:
        """Count one more event of ``event_type`` for ``workflow_id`` (in ``bucket``) unless ``limit`` is reached.

        Returns:
            True if it was counted (the event may be signalled), False if the limit was reached.
        """
        if limit < 1:
            return False
        c = _event_counts.c
        key = (c.workflow_id == workflow_id) & (c.event_type == event_type) & (c.bucket == bucket)
        for _ in range(2):
            try:
                async with self._write() as conn:
                    counted = await conn.execute(
                        update(_event_counts)
                        .where(key & (c.count < limit))
                        .values(count=c.count + 1, updated_at=_now())
                    )
                    if counted.rowcount:
                        return True
                    if (await conn.execute(select(c.count).where(key))).first() is not None:
                        return False  # at the limit
                    await conn.execute(
                        insert(_event_counts).values(
                            workflow_id=workflow_id, event_type=event_type, bucket=bucket, count=1, updated_at=_now()
                        )
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
        s = _signatures.c
        now = _now()
        try:
            async with self._write() as conn:
                await conn.execute(delete(_signatures).where(s.seen_at < now - keep))
                await conn.execute(
                    insert(_signatures).values(provider=provider, signature=signature, body=body, seen_at=now)
                )
            return True
        except IntegrityError:
            row = await self._one(select(s.body).where(s.provider == provider, s.signature == signature))
            return row is not None and row[0] == body

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
