"""The store: customer profiles and the message log (SQLAlchemy 2 async, Alembic)."""

from durable_journeys.activities.store._store import Store
from durable_journeys.activities.store.records import (
    Cap,
    ContactLimits,
    ContactRefused,
    Engagement,
    InboxMessage,
    MessageRecord,
    MessageStatus,
    PaidOrder,
    ReceiptRecord,
    SkipRecord,
)

__all__ = [
    "Cap",
    "ContactLimits",
    "ContactRefused",
    "Engagement",
    "InboxMessage",
    "MessageRecord",
    "MessageStatus",
    "PaidOrder",
    "ReceiptRecord",
    "SkipRecord",
    "Store",
]
