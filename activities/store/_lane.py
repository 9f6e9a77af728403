"""The store's hot statements straight on the driver's connection, with SQLAlchemy's own type conversions.

Every journey's sends run the same few statements (the profile read, the claim, the answer, the
receipt's hand-over), built once at import. Executed through SQLAlchemy they cost about 0.35 ms of
CPU each, of which the driver's own call is 0.07-0.1 ms: the rest is SQLAlchemy's execution
machinery (a connection object and its events, an execution context, a cursor result and its
rows), which is general and paid per call (bench/README.md, change 18).

The lane compiles each such statement once per dialect and set of columns into its SQL, its
parameters in order and SQLAlchemy's own bind and result processors for their types (the same
conversions as through SQLAlchemy: JSON, datetimes on SQLite, booleans), and runs it on the
driver's connection (aiosqlite, in one trip to its thread; asyncpg), borrowed from and given back
to the engine's pool. A driver's error is raised as SQLAlchemy's (``IntegrityError``,
``OperationalError``, ``DBAPIError``), without the statement's values, as the store's other
calls raise them; a connection the error left unusable (closed by the server, a client-side
protocol error; on SQLite an error other than a constraint's, a lock's or the file's) is dropped
from the pool.

Only statements built once belong here (a statement built per call would be compiled per call):
the lane keeps every statement it compiled.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from durable_journeys.activities.store._sqlite import OneTripConnection, _run

if TYPE_CHECKING:
    import asyncio


class _Compiled(NamedTuple):
    """One statement for one dialect and one set of columns."""

    sql: str
    names: tuple[str, ...]  # the parameters, in the SQL's order
    binds: tuple[Callable[[Any], Any] | None, ...]
    defaults: dict[str, Any]  # the statement's own values, and its columns' scalar defaults where the call gives none
    results: tuple[Callable[[Any], Any] | None, ...]
    row: Any  # the rows' type: attribute access by column name, as SQLAlchemy's rows


def _compile(statement: ClauseElement, dialect: Any, columns: Iterable[str]) -> _Compiled:
    columns = sorted(columns)
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=columns))
    names = tuple(compiled.positiontup or ())
    processors = cast(dict[str, Callable[[Any], Any]], compiled._bind_processors)
    defaults: dict[str, Any] = {}
    for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
        default = column.default if compiled.isinsert else column.onupdate
        if default is None or not default.is_scalar:  # pragma: no cover - the store's tables have none
            raise TypeError(f"the lane cannot fill {column.key}: only scalar defaults")
        defaults[column.key] = cast(Any, default).arg
    given = set(columns)
    for name, bind in compiled.binds.items():  # values the statement carries itself (``attempts + 1``)
        if name in names and name not in given and name not in defaults and not bind.required:
            defaults[name] = bind.effective_value
    columns_out = compiled._result_columns or []
    keys = [rc[0] for rc in columns_out]
    results = tuple(rc[3]._cached_result_processor(dialect, None) for rc in columns_out)
    return _Compiled(
        sql=str(compiled),
        names=names,
        binds=tuple(processors.get(name) for name in names),
        defaults=defaults,
        results=results,
        row=namedtuple("Row", keys, rename=True) if keys else None,  # noqa: PYI024 - fields known at run time
    )


def _driver_error(exc: BaseException, sql: str, driver: Any) -> tuple[DBAPIError, bool] | None:
    """SQLAlchemy's error for a driver's, and whether the connection is broken; None: not a driver's error."""
    if isinstance(exc, sqlite3.Error):
        if isinstance(exc, sqlite3.IntegrityError):
            return IntegrityError(sql, None, exc, hide_parameters=True), False
        if isinstance(exc, sqlite3.OperationalError):  # locked, busy, disk full: the connection is fine
            return OperationalError(sql, None, exc, hide_parameters=True), False
        return DBAPIError(sql, None, exc, hide_parameters=True), True
    import asyncpg

    if not isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)):
        return None
    orig = DriverError(exc)
    if not isinstance(exc, asyncpg.PostgresError) or driver.is_closed():  # gone (a restart, a kill) or confused
        return OperationalError(sql, None, orig, hide_parameters=True), True
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(sql, None, orig, hide_parameters=True), False
    return DBAPIError(sql, None, orig, hide_parameters=True), False


class DriverError(Exception):
    """A PostgreSQL error without its DETAIL, which quotes the row's values (``Key (order_id)=(...)``)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}")
        self.sqlstate: str | None = getattr(exc, "sqlstate", None)


class LaneConnection:
    """One driver connection of the lane, for the duration of a call."""

    def __init__(self, lane: Lane, driver: Any) -> None:
        self._lane = lane
        self._driver = driver
        self.dialect = lane.dialect
        self.broken = False

    async def execute(self, statement: ClauseElement, params: dict[str, Any]) -> list[Any]:
        """Run a statement built once, with ``params`` (bind parameters and the columns it sets); its rows."""
        compiled = self._lane.compiled(statement, params)
        values = {**compiled.defaults, **params} if compiled.defaults else params
        args = [
            values[name] if bind is None else bind(values[name])
            for name, bind in zip(compiled.names, compiled.binds, strict=True)
        ]
        try:
            raw = await self._run(compiled.sql, args)
        except Exception as exc:
            self._raise_as_sqlalchemy(exc, compiled.sql)
            raise
        if compiled.row is None:
            return []
        results, make = compiled.results, compiled.row._make
        if not any(results):
            return [make(r) for r in raw]
        return [make(v if p is None else p(v) for p, v in zip(results, r, strict=True)) for r in raw]

    def _raise_as_sqlalchemy(self, exc: BaseException, sql: str) -> None:
        """Raise SQLAlchemy's error for a driver's error (marking the connection if it broke); else return."""
        translated = _driver_error(exc, sql, self._driver)
        if translated is None:
            return
        error, broken = translated
        self.broken = self.broken or broken
        raise error from exc

    async def _run(self, sql: str, args: Sequence[Any]) -> Sequence[Sequence[Any]]:
        driver = self._driver
        if self._lane.sqlite:
            if isinstance(driver, OneTripConnection):
                trip = await driver._execute(_run, driver._conn, sql, args, False)  # type: ignore[no-untyped-call]
                return trip[3]  # type: ignore[no-any-return]
            async with driver.execute(sql, args) as cursor:  # aiosqlite as it comes
                return await cursor.fetchall()  # type: ignore[no-any-return]
        return await driver.fetch(sql, *args)  # type: ignore[no-any-return]


class Lane:
    """Statements built once, run on the driver's connection (see the module's docstring).

    Args:
        engine: the store's engine, whose pool the lane borrows connections from.
        write_lock: SQLite's writer queue (the store's), or None.
    """

    def __init__(self, engine: AsyncEngine, write_lock: asyncio.Lock | None) -> None:
        self._engine = engine
        self.dialect = engine.dialect
        self.sqlite = engine.dialect.name == "sqlite"
        self._write_lock = write_lock
        self._compiled: dict[tuple[int, frozenset[str]], tuple[ClauseElement, _Compiled]] = {}

    def compiled(self, statement: ClauseElement, params: dict[str, Any]) -> _Compiled:
        key = (id(statement), frozenset(params))
        entry = self._compiled.get(key)
        if entry is None:  # the statement is kept with it, so no other statement can take its id
            entry = self._compiled[key] = (statement, _compile(statement, self.dialect, params))
        return entry[1]

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[LaneConnection]:
        """A connection of the engine's pool, given back after the block (dropped if it broke)."""
        pooled = await self._engine.raw_connection()
        conn = LaneConnection(self, pooled.driver_connection)
        try:
            yield conn
        finally:
            # A broken connection is dropped; so is one left in a transaction of the lane's own on
            # PostgreSQL (a call cancelled half-way), which the pool's rollback would not see.
            if conn.broken or (not self.sqlite and conn._driver.is_in_transaction()):
                pooled.invalidate()
            await greenlet_spawn(pooled.close)

    async def read(self, statement: ClauseElement, params: dict[str, Any]) -> Any:
        """The first row of a read, or None."""
        async with self.connect() as conn:
            rows = await conn.execute(statement, params)
        return rows[0] if rows else None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[LaneConnection]:
        """One write transaction (on SQLite, in the store's writer queue)."""
        if self._write_lock is not None:
            async with self._write_lock, self._transaction() as conn:
                yield conn
            return
        async with self._transaction() as conn:
            yield conn

    @asynccontextmanager
    async def single_writes(self) -> AsyncIterator[LaneConnection]:
        """Writes each atomic on its own: autocommit on PostgreSQL, one write transaction on SQLite."""
        if self.sqlite:
            async with self.write() as conn:
                yield conn
            return
        async with self.connect() as conn:  # asyncpg outside a transaction commits each statement
            yield conn

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[LaneConnection]:
        async with self.connect() as conn:
            driver = conn._driver
            try:
                if self.sqlite:  # sqlite3 begins at the first write, as through SQLAlchemy
                    yield conn
                    await driver.commit()
                    return
                transaction = driver.transaction()
                await transaction.start()
                try:
                    yield conn
                except BaseException:
                    await transaction.rollback()
                    raise
                await transaction.commit()
            except BaseException as exc:
                if self.sqlite:
                    await driver.rollback()
                conn._raise_as_sqlalchemy(exc, "COMMIT")
                raise
