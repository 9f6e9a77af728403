"""The store: customer profiles and the message log (SQLAlchemy 2 async, Alembic)."""

from activities.store._store import InboxMessage, MessageRecord, MessageStatus, ReceiptRecord, Store

__all__ = ["InboxMessage", "MessageRecord", "MessageStatus", "ReceiptRecord", "Store"]
