"""SQLite through aiosqlite: one trip to its thread per statement, and the same answers as aiosqlite's own cursors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from durable_journeys.activities import CustomerProfile, MessageStatus, Store
from durable_journeys.activities.store import _sqlite
from durable_journeys.activities.store._sqlite import OneTripConnection
from tests.helpers import message, migrated_store


async def driver_connection(store: Store) -> object:
    async with store.engine.connect() as conn:
        return (await conn.get_raw_connection()).driver_connection


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with migrated_store("sqlite", tmp_path) as s:
        yield s


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of each call made on a connection's thread from now on."""
    made: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: object, *args: object, **kwargs: object) -> object:
        made.append(getattr(fn, "__name__", "?"))
        return await original(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return made


async def test_a_read_makes_one_trip(store: Store, trips: list[str]) -> None:
    await store.upsert_customer(CustomerProfile(customer_id="c-1", phone="010-1234-5678"))
    trips.clear()
    for _ in range(10):
        assert (await store.get_customer("c-1")) is not None
    # aiosqlite's own cursors took five: cursor, execute, fetchall, close, and the pool's
    # rollback of a connection that has no transaction open.
    assert trips == ["_run"] * 10, trips


@pytest.mark.parametrize("ends", ["commit", "rollback"])
async def test_a_transaction_still_ends_on_the_thread(store: Store, trips: list[str], ends: str) -> None:
    async with store.engine.connect() as conn:
        await store.upsert_customer(CustomerProfile(customer_id="c-1", phone="010-1234-5678"))
        trips.clear()
        async with conn.begin() as tx:
            await conn.exec_driver_sql("UPDATE customers SET dead_addresses = '[\"x\"]' WHERE customer_id = 'c-1'")
            await (tx.commit() if ends == "commit" else tx.rollback())
        assert trips == ["_run", ends], trips
    profile = await store.get_customer("c-1")  # another connection sees what the end left
    assert profile is not None and profile.dead_addresses == (["x"] if ends == "commit" else [])


async def test_rows_counts_and_returning_are_those_of_the_statement(store: Store) -> None:
    assert isinstance(await driver_connection(store), OneTripConnection)
    await store.upsert_customer(CustomerProfile(customer_id="c-1", phone="010-1234-5678"))
    record, created = await store.claim_message(**message("k-1"))
    assert created and record.status is MessageStatus.SENDING  # INSERT ... RETURNING
    again, created = await store.claim_message(**message("k-1"))
    assert not created and again.attempts == 2  # UPDATE ... RETURNING
    await store.finish_message("k-1", MessageStatus.ACCEPTED, provider_message_id="p-1")
    got = await store.get_message("k-1")
    assert got is not None and (got.status, got.provider_message_id) == (MessageStatus.ACCEPTED, "p-1")
    assert [m.idempotency_key for m in await store.messages()] == ["k-1"]  # several columns, a list
    assert await store.get_message("k-2") is None  # no row
    assert await store.count_event("w-1", "order.shipped", limit=1)  # an upsert's RETURNING
    assert not await store.count_event("w-1", "order.shipped", limit=1)  # and its empty one


async def test_without_the_internals_it_needs_the_store_uses_aiosqlite_as_it_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(aiosqlite.Connection, "_execute")
    assert _sqlite.one_trip_creator(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}") is None
    monkeypatch.undo()
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'y.db'}", async_creator=None)
    try:
        await store.migrate()
        assert not isinstance(await driver_connection(store), OneTripConnection)
        assert await store.get_customer("nobody") is None
    finally:
        await store.close()
