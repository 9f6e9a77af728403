"""SQLite through aiosqlite in one trip to its thread per statement.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's adapter makes
four calls per statement (open a cursor, execute, fetch, close): four hand-offs to the thread
and back, each a queue put, a wake-up and a future resolved across threads. Those hand-offs were
about a seventh of the worker's CPU on SQLite (bench/README.md, change 14). The connection here
gives SQLAlchemy cursors that execute, fetch every row and close in one hand-off; what SQLAlchemy
reads afterwards (rows, ``description``, ``rowcount``, ``lastrowid``) is kept from that trip. A
commit or rollback with nothing to end makes no trip.

It relies on two of aiosqlite's internals (``Connection._execute``, which queues a call for the
thread, and ``Connection._conn``, the sqlite3 connection there); :func:`one_trip_creator` returns
None when the installed aiosqlite lacks them, and the store then uses aiosqlite as it comes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from threading import Thread
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url


def _run(conn: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> tuple[Any, int, int | None, list[Any]]:
    """On the connection's thread: the statement, all of its rows, and what the cursor says after it."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        elif parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class _OneTripCursor:
    """The part of ``aiosqlite.Cursor`` SQLAlchemy's adapter uses, one trip to the thread per statement."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1
        self._rows: list[Any] = []

    async def __aenter__(self) -> _OneTripCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def _trip(self, sql: str, parameters: Any, *, many: bool) -> _OneTripCursor:
        conn = self._connection
        trip = await conn._execute(_run, conn._conn, sql, parameters, many)  # type: ignore[no-untyped-call]
        self.description, self.rowcount, self.lastrowid, self._rows = trip
        return self

    async def execute(self, sql: str, parameters: Any = None) -> _OneTripCursor:
        return await self._trip(sql, parameters, many=False)

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> _OneTripCursor:
        return await self._trip(sql, parameters, many=True)

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self.arraysize if size is None else size
        rows, self._rows = self._rows[:n], self._rows[n:]
        return rows

    async def close(self) -> None:
        self._rows = []


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors make one trip to its thread per statement.

    A commit or rollback with no transaction open makes no trip at all: sqlite3 would do nothing
    with it on the thread either. SQLAlchemy rolls back every connection it takes back into its
    pool, most often after a read, which opens no transaction on SQLite.
    """

    def cursor(self) -> _OneTripCursor:  # type: ignore[override]
        return _OneTripCursor(self)

    async def commit(self) -> None:
        if self._conn.in_transaction:  # a flag of the connection; no statement of it is in flight now
            await super().commit()

    async def rollback(self) -> None:
        if self._conn.in_transaction:
            await super().rollback()


def one_trip_creator(url: str) -> Callable[[], Awaitable[OneTripConnection]] | None:
    """``create_async_engine``'s ``async_creator`` for a SQLite URL (None: aiosqlite lacks what it needs).

    The sqlite3 connection is opened with the arguments SQLAlchemy's own aiosqlite dialect would
    give it for ``url``.
    """
    if not (hasattr(aiosqlite.Connection, "_execute") and hasattr(aiosqlite.Connection, "_conn")):
        return None
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))

    def open_sqlite() -> sqlite3.Connection:
        return sqlite3.connect(*args, **kwargs)  # type: ignore[call-overload,no-any-return]

    async def connect() -> OneTripConnection:
        connection = OneTripConnection(open_sqlite, 64)
        # As SQLAlchemy does for aiosqlite: its thread must not keep the process alive.
        thread = connection if isinstance(connection, Thread) else connection._thread
        thread.daemon = True
        await connection
        return connection

    return connect
