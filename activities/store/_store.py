"""The store: customers, the message log, reports, events and the inbox, one aggregate per module.

Each aggregate is a class over :class:`StoreBase` (one short transaction per call); ``Store``
is all of them on one engine. The contact policy's claim is one transaction in ``_messages``.
"""

from __future__ import annotations

from durable_journeys.activities.store._customers import CustomerStore
from durable_journeys.activities.store._events import EventStore
from durable_journeys.activities.store._experiments import ExperimentStore
from durable_journeys.activities.store._inbox import InboxStore
from durable_journeys.activities.store._messages import MessageLog
from durable_journeys.activities.store._reports import ReportStore


class Store(CustomerStore, MessageLog, ReportStore, EventStore, InboxStore, ExperimentStore):
    """Customers and the message log, and what reports, floods and the inbox need.

    Every method is one short transaction: no transaction is held across a provider call.

    Args:
        engine: an async engine (``sqlite+aiosqlite:///journeys.db`` or ``postgresql+asyncpg://``).
    """
