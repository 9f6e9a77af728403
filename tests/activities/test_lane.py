"""The store's lane (``activities/store/_lane.py``): the hot statements on the driver's connection.

The lane must read and write exactly what SQLAlchemy would (the same rows, the same Python types
for JSON, datetimes and booleans), raise SQLAlchemy's errors without the statement's values, leave
nothing of a failed transaction, and drop a connection that broke.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError

from durable_journeys.activities import CustomerProfile, MessageStatus, Store
from durable_journeys.activities.store._customers import _PROFILE
from durable_journeys.activities.store._events import _EVENT_SEEN
from durable_journeys.activities.store._messages import _CLAIM_ROWS_IN_WINDOWS, _MESSAGE, _RECEIPT_STATUS
from durable_journeys.activities.store._reports import _FIRST_ORDER, _NEW_ORDER, _ORDER_CUSTOMER
from tests.helpers import message, migrated_store

# Text a customer's data may hold: quotes, SQL, NUL-free control characters, Hangul, emoji, long.
AWKWARD = [
    "",
    "김하늘",
    'O\'Brien "quoted" \\ back',
    "'; DROP TABLE customers; --",
    "줄\n바꿈\t탭",
    "🎉 이모지 " * 20,
    "x" * 2_000,
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with migrated_store(request.param, tmp_path) as s:
        yield s


def as_dict(row: Any) -> dict[str, Any] | None:
    return None if row is None else dict(row._asdict() if hasattr(row, "_asdict") else row._mapping)


async def same_through_both(store: Store, statement: Any, params: dict[str, Any]) -> dict[str, Any] | None:
    """The row the lane reads, asserted equal (values and types) to the one SQLAlchemy reads."""
    lane = as_dict(await store._lane.read(statement, params))
    core = as_dict(await store._one(statement, params))
    assert lane == core
    if lane is not None and core is not None:
        assert {k: type(v) for k, v in lane.items()} == {k: type(v) for k, v in core.items()}
    return lane


@pytest.mark.parametrize("awkward", AWKWARD)
async def test_the_lane_reads_what_sqlalchemy_reads(store: Store, awkward: str) -> None:
    kst = timezone(timedelta(hours=9))
    at = datetime(2026, 3, 1, 23, 59, 58, 123456, tzinfo=kst)
    await store.upsert_customer(
        CustomerProfile(customer_id="c-1", name=awkward[:100], phone="010-1234-5678", marketing_consent={"sms": at})
    )
    await store.record_order("c-1", "o-1", at, amount=12_000)
    fields = {**message("k-1"), "step": awkward[:100] or "s", "journey_time": at}
    await store.claim_message(**fields)
    await store.finish_message("k-1", MessageStatus.ACCEPTED, provider_message_id=awkward[:200], error_message=awkward)
    await store.remember_event("w-1", "e-1")

    profile = await same_through_both(store, _PROFILE, {"p_customer_id": "c-1"})
    assert profile is not None and profile["profile"]["name"] == awkward[:100]
    logged = await same_through_both(store, _MESSAGE, {"p_key": "k-1"})
    assert logged is not None and logged["error_message"] == awkward and logged["superseded"] is False
    await same_through_both(store, _RECEIPT_STATUS, {"p_key": "k-1"})
    await same_through_both(
        store, _CLAIM_ROWS_IN_WINDOWS, {"p_key": "k-2", "p_customer_id": "c-1", "p_since": at - timedelta(days=1)}
    )
    assert (await same_through_both(store, _FIRST_ORDER, {"p_customer_id": "c-1"})) == {"order_id": "o-1"}
    await same_through_both(store, _ORDER_CUSTOMER, {"p_order_id": "o-1"})
    await same_through_both(store, _EVENT_SEEN, {"p_workflow_id": "w-1", "p_event_id": "e-1"})
    assert await same_through_both(store, _MESSAGE, {"p_key": "no such key"}) is None


async def test_what_the_lane_writes_sqlalchemy_reads_back(store: Store) -> None:
    at = datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC)
    record, created = await store.claim_message(**{**message("k-1"), "journey_time": at, "episode": None})
    assert created and record.attempts == 1 and record.receipt_awaited  # a column's default, filled by the lane
    again, created = await store.claim_message(**message("k-1"))
    assert not created and again.attempts == 2  # ``attempts + 1``: a value the statement carries
    (through_core,) = await store.messages()  # read through SQLAlchemy
    assert through_core.model_dump(exclude={"updated_at"}) == again.model_dump(exclude={"updated_at"})
    assert through_core.journey_time == at


async def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store._lane.write() as conn:
            await conn.execute(
                _NEW_ORDER, {"order_id": "o-1", "customer_id": "c-1", "paid_at": datetime.now(UTC), "amount": 1}
            )
            raise RuntimeError("the call failed half-way")
    assert await store.order_customer("o-1") is None
    assert await store.record_order("c-1", "o-1")  # and the connection went back to the pool usable


@pytest.mark.parametrize("secret", ["010-9876-5432", "김하늘"])
async def test_a_duplicate_is_sqlalchemy_s_integrity_error_without_its_values(store: Store, secret: str) -> None:
    values = {"order_id": secret, "customer_id": secret, "paid_at": datetime.now(UTC), "amount": 1}
    async with store._lane.single_writes() as conn:
        await conn.execute(_NEW_ORDER, values)
    with pytest.raises(IntegrityError) as caught:
        async with store._lane.single_writes() as conn:
            await conn.execute(_NEW_ORDER, values)
    assert secret not in str(caught.value)  # PostgreSQL's DETAIL quotes the key: it is left out
    assert "duplicate" in str(caught.value) or "UNIQUE" in str(caught.value)  # what went wrong is said
    assert await store.order_customer(secret) == secret  # the store still works


@pytest.mark.postgres
async def test_a_connection_that_broke_is_dropped_from_the_pool(tmp_path: Path) -> None:
    async with migrated_store("postgres", tmp_path) as store:
        dropped: list[object] = []
        event.listen(store.engine.sync_engine.pool, "invalidate", lambda *_: dropped.append(1))
        with pytest.raises(OperationalError):
            async with store._lane.connect() as conn:
                pid = await conn._driver.fetchval("SELECT pg_backend_pid()")
                await store._one(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})  # another connection
                await conn.execute(_MESSAGE, {"p_key": "k-1"})
        assert dropped == [1]
        for _ in range(20):  # every pooled connection again: none is the dead one
            assert await store.get_message("k-1") is None
