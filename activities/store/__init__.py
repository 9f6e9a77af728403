"""The store: customer profiles and the message log (SQLAlchemy 2 async, Alembic)."""

from activities.store._store import MessageRecord, MessageStatus, ReceiptRecord, Store

__all__ = ["MessageRecord", "MessageStatus", "ReceiptRecord", "Store"]
