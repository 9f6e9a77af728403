"""SQLAlchemy tables of the store (the Alembic migrations create them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, MetaData, String, Text, true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class CustomerRow(Base):
    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    dead_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    # channel -> when the biennial consent notice last went out (kept across profile upserts)
    consent_notices: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MessageRow(Base):
    __tablename__ = "message_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    workflow_id: Mapped[str] = mapped_column(String(200), index=True)
    step: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(32))
    template: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_message_id: Mapped[str | None] = mapped_column(String(200), index=True, nullable=True)
    receipt_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error_class: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)
    receipt_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    receipt_error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    receipt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    receipt_late: Mapped[bool] = mapped_column(Boolean, default=False)
    journey_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    episode: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Gateway fallback: the last channel of the provider's own chain (a failure on an earlier one
    # is not final), and the channel the settling receipt named.
    final_channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    receipt_channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Contact policy: the content's key (template + variables, hashed) and the sending journey.
    content_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    journey: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # An operator's resend: the key of the message it sends again.
    resend_of: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # Whether the journey waits for this message's receipt by signal; when not (a gateway chain
    # from engine 2), the webhook app logs the receipt and the timeline reads it from here.
    receipt_awaited: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Experiments: the journey's variant when it sent this, and what the provider was asked for
    # (``sms`` or ``lms`` on the SMS channel, else the channel): the report prices it.
    experiment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    variant: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SendSkipRow(Base):
    """A send that did not go out because of the policy or the profile (the latest such outcome per key)."""

    __tablename__ = "send_skips"

    idempotency_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(200))
    journey: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # skipped | deferred
    reason: Mapped[str] = mapped_column(String(64))
    journey_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EngagementRow(Base):
    """A customer opened or clicked a message (``message.opened`` / ``message.clicked``), for the report."""

    __tablename__ = "engagements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # opened | clicked
    step: Mapped[str | None] = mapped_column(String(100), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    event_id: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderRow(Base):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    paid_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    amount: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # KRW, for the report's revenue


class AssignmentRow(Base):
    """The variant a customer took in an experiment: the first one holds for every later journey."""

    __tablename__ = "experiment_assignments"

    experiment: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    variant: Mapped[str] = mapped_column(String(64))
    how: Mapped[str] = mapped_column(String(16))  # assigned | forced
    journey: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(200))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ExperimentRow(Base):
    """An operator's live setting of one experiment: new weights, stopped, or a winner for everyone."""

    __tablename__ = "experiments"

    experiment: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # running | stopped | winner
    weights: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    winner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    changed_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(300))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InboxRow(Base):
    __tablename__ = "in_app_inbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SeenEventRow(Base):
    __tablename__ = "seen_events"

    workflow_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ContactHoldRow(Base):
    """A lower-priority ad waiting out the priority grace before it may take a window's last slot."""

    __tablename__ = "contact_holds"

    idempotency_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EventCountRow(Base):
    """How many events of one type the facade signalled to one journey (in one bucket: a day, or ever)."""

    __tablename__ = "event_counts"

    workflow_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookSignatureRow(Base):
    """A webhook signature that does not cover the body (Bizgo's), with the body it came with first."""

    __tablename__ = "webhook_signatures"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    signature: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of timestamp and signature
    body: Mapped[str] = mapped_column(String(64))  # sha256 of the body
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
