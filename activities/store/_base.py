"""The store's engine, connections, migrations and the tables' Core handles; each aggregate builds on it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, cast

from sqlalchemy import Table, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from durable_journeys.activities.store._lane import Lane
from durable_journeys.activities.store._tables import (
    AssignmentRow,
    ContactHoldRow,
    CustomerRow,
    EngagementRow,
    EventCountRow,
    ExperimentRow,
    InboxRow,
    MessageRow,
    OrderRow,
    SeenEventRow,
    SendSkipRow,
    WebhookSignatureRow,
)

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
_assignments = cast(Table, AssignmentRow.__table__)
_experiments = cast(Table, ExperimentRow.__table__)
_MIGRATIONS = Path(__file__).parent / "migrations"

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory


# Connections a store keeps open (``JOURNEYS_DATABASE_POOL_SIZE``): as many as SQLAlchemy's default
# pool reached at most (5 kept and 10 more), now kept.
POOL_SIZE = 15


def _in_memory(url: str) -> bool:
    """Whether ``url`` is an in-memory SQLite database (SQLAlchemy gives it a pool of one connection)."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and (
        parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _sent_as(row: Any) -> tuple[str, str | None, str, str]:
    """What one message counts as against the caps: its step (once for all its channels), or a resend on its own."""
    return (row.workflow_id, row.episode, row.step, row.idempotency_key if row.resend_of else "")


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


@functools.cache
def _migration_scripts() -> ScriptDirectory:
    """The migration scripts, parsed once a process (each store of a test suite migrates its own database)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


class StoreBase:
    """The engine and one short transaction per call: no transaction is held across a provider call.

    Args:
        engine: an async engine (``sqlite+aiosqlite:///journeys.db`` or ``postgresql+asyncpg://``).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # A statement that is atomic on its own needs no transaction around it. On PostgreSQL,
        # autocommit spares each its BEGIN and its COMMIT or ROLLBACK (a third of a read's CPU);
        # SQLite's driver begins no transaction for a read anyway, and switching it costs more
        # than it saves.
        self._autocommit = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if engine.dialect.name == "postgresql" else None
        )
        # SQLite has one writer at a time: queue writers here instead of in busy-waiting
        # threads that each hold a pooled connection. PostgreSQL needs no such lock.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        # The statements every journey runs (its sends, the facade's events and orders, the webhook
        # app's receipts), on the driver's connection (change 18): see _lane.py.
        self._lane = Lane(engine, self._write_lock)

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
    def from_url(
        cls, url: str, *, connect_timeout: float = 10.0, pool_size: int = POOL_SIZE, **engine_kwargs: Any
    ) -> Self:
        """Build a store for a database URL.

        Args:
            url: ``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://user@host/db``.
            connect_timeout: seconds to wait for a database server that accepts but never answers.
            pool_size: connections kept open, and never more (a call waits for one to come free).
            **engine_kwargs: passed to ``create_async_engine``.
        """
        # Statement parameters (names, message bodies) never reach an exception or a log line.
        engine_kwargs.setdefault("hide_parameters", True)
        if "poolclass" not in engine_kwargs and not _in_memory(url):
            # A fixed pool. SQLAlchemy's default keeps 5 and opens up to 10 more under load, each
            # closed as soon as it is returned: under a burst every call paid for a new connection
            # (PostgreSQL: TLS negotiation, authentication, the driver's type setup; 684 of them
            # for 300 journeys in the bench; bench/README.md, change 17).
            engine_kwargs.setdefault("pool_size", pool_size)
            engine_kwargs.setdefault("max_overflow", 0)
        if url.startswith("postgresql+asyncpg"):  # a server that accepts but never answers: give up
            engine_kwargs.setdefault("connect_args", {}).setdefault("timeout", connect_timeout)
        if url.startswith("sqlite+aiosqlite") and "async_creator" not in engine_kwargs:
            from durable_journeys.activities.store._sqlite import one_trip_creator

            creator = one_trip_creator(url)  # one trip to aiosqlite's thread per statement, not four
            if creator is not None:
                engine_kwargs["async_creator"] = creator
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
        from alembic.config import Config  # loaded by the processes that migrate, not by every import
        from alembic.runtime.environment import EnvironmentContext

        def upgrade(sync_conn: Any) -> None:
            _lock_for_migration(sync_conn)
            cfg = Config()
            cfg.set_main_option("script_location", str(_MIGRATIONS))
            cfg.attributes["connection"] = sync_conn
            script = _migration_scripts()
            # What ``alembic.command.upgrade(cfg, "head")`` does, with the scripts read once a process.
            with EnvironmentContext(
                cfg, script, fn=lambda rev, _context: script._upgrade_revs("head", rev), destination_rev="head"
            ):
                script.run_env()

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)

    async def close(self) -> None:
        """Release every pooled connection."""
        await self.engine.dispose()

    async def _one(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        """The first row of a read, or None (``params``: the values of a prebuilt statement's bind parameters)."""
        async with (self._autocommit or self.engine).connect() as conn:
            return (await conn.execute(statement, params)).first()
