"""The store: customer profiles and the message log (SQLAlchemy 2 async, Alembic).

``Store`` loads on first use (PEP 562): the records (pydantic models the contact policy and the
settings use) do not pull in SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from durable_journeys.activities.store.records import (
    Assignment,
    Cap,
    ContactLimits,
    ContactRefused,
    Engagement,
    EventAdmission,
    ExperimentSetting,
    InboxMessage,
    MessageRecord,
    MessageStatus,
    PaidOrder,
    ReceiptRecord,
    SkipRecord,
)
from durable_journeys.providers.lazy import lazy_exports

if TYPE_CHECKING:
    from durable_journeys.activities.store._store import Store as Store

__all__ = [
    "Assignment",
    "Cap",
    "ContactLimits",
    "ContactRefused",
    "Engagement",
    "EventAdmission",
    "ExperimentSetting",
    "InboxMessage",
    "MessageRecord",
    "MessageStatus",
    "PaidOrder",
    "ReceiptRecord",
    "SkipRecord",
    "Store",
]


__getattr__ = lazy_exports(__name__, {"Store": "durable_journeys.activities.store._store"})
