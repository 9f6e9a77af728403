"""The store: customer profiles and the message log (SQLAlchemy 2 async, Alembic).

``Store`` loads on first use (PEP 562): the records (pydantic models the contact policy and the
settings use) do not pull in SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from durable_journeys.activities.store._store import Store as Store

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


def __getattr__(name: str) -> Any:
    if name != "Store":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from durable_journeys.activities.store._store import Store

    globals()["Store"] = Store  # once loaded, a plain attribute
    return Store
