"""The store on SQLite and on PostgreSQL (127.0.0.1:5432, database ``test``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durable_journeys.activities import CustomerProfile, MessageStatus, Store
from durable_journeys.providers import DeliveryReceipt, ReceiptStatus
from tests.helpers import message, migrated_store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with migrated_store(request.param, tmp_path) as s:
        yield s


def profile(**overrides: object) -> CustomerProfile:
    data: dict[str, object] = {"customer_id": "c-1", "phone": "010-1234-5678", "email": "a@example.com"}
    data.update(overrides)
    return CustomerProfile.model_validate(data)


async def test_migrate_twice_is_harmless(store: Store) -> None:
    await store.migrate()
    assert await store.messages() == []


async def test_profile_round_trip_and_upsert_replaces(store: Store) -> None:
    assert await store.get_customer("c-1") is None
    await store.upsert_customer(profile(name="김하늘"))
    await store.upsert_customer(profile(name="이바다", tier="vip"))
    got = await store.get_customer("c-1")
    assert got is not None and (got.name, got.tier, got.phone) == ("이바다", "vip", "01012345678")


@pytest.mark.parametrize(
    ("field", "first", "second"),
    [
        ("push_tokens", ["tok-a"], ["tok-b"]),
        ("addresses", {"fax": "tok-a"}, {"fax": "tok-b"}),  # an added channel's address, the same rule
    ],
)
async def test_dead_address_survives_upsert_only_while_still_used(
    store: Store, field: str, first: object, second: object
) -> None:
    await store.upsert_customer(profile(**{field: first}))
    await store.mark_address_dead("c-1", "tok-a")
    await store.mark_address_dead("c-1", "tok-a")
    await store.upsert_customer(profile(**{field: first}))
    got = await store.get_customer("c-1")
    assert got is not None and got.dead_addresses == ["tok-a"]
    await store.upsert_customer(profile(**{field: second}))  # a new address: alive again
    got = await store.get_customer("c-1")
    assert got is not None and got.dead_addresses == []


async def test_an_idempotency_key_is_claimed_once(store: Store) -> None:
    first, created = await store.claim_message(**message())
    again, created_again = await store.claim_message(**message())
    assert (created, created_again) == (True, False)
    assert (first.status, again.attempts) == (MessageStatus.SENDING, 2)
    assert len(await store.messages()) == 1


async def test_concurrent_claims_create_one_row(store: Store) -> None:
    results = await asyncio.gather(*(store.claim_message(**message()) for _ in range(8)))
    assert sum(created for _, created in results) == 1
    assert len(await store.messages()) == 1


async def test_receipts_duplicate_late_and_unknown(store: Store) -> None:
    key = message()["idempotency_key"]
    await store.claim_message(**message())
    await store.finish_message(key, MessageStatus.ACCEPTED, provider_message_id="sbx_1")
    receipt = DeliveryReceipt(provider="sandbox", provider_message_id="sbx_1", status=ReceiptStatus.DELIVERED)
    first = await store.record_receipt(receipt)
    second = await store.record_receipt(receipt)
    assert first is not None and second is not None
    assert (first.duplicate, second.duplicate, first.late) == (False, True, False)
    assert await store.record_receipt(receipt.model_copy(update={"provider_message_id": "nope"})) is None

    late_key = message("post-purchase:o-1:payment_complete:sms")["idempotency_key"]
    await store.claim_message(**message(late_key))
    await store.mark_superseded([late_key])
    late = await store.record_receipt(
        DeliveryReceipt(provider="sandbox", idempotency_key=late_key, status=ReceiptStatus.DELIVERED)
    )
    assert late is not None and late.late and late.message.receipt_late


@pytest.mark.parametrize(
    ("reports", "settled"),
    [
        ([("alimtalk", "failed")], None),  # the provider goes on to the SMS: not final
        ([("alimtalk", "failed"), ("sms", "delivered")], ("delivered", "sms")),
        ([("alimtalk", "failed"), ("sms", "failed")], ("failed", "sms")),  # the chain's last: final
        ([("alimtalk", "delivered")], ("delivered", "alimtalk")),
        ([(None, "failed")], ("failed", None)),  # a report that names no channel cannot be told apart
    ],
)
async def test_in_a_gateway_chain_only_the_last_channel_s_failure_settles(
    store: Store, reports: list[tuple[str | None, str]], settled: tuple[str, str | None] | None
) -> None:
    key = message()["idempotency_key"]
    await store.claim_message(**message(), final_channel="sms")
    await store.finish_message(key, MessageStatus.ACCEPTED, provider_message_id="bz_1")
    records = []
    for channel, status in reports:
        receipt = DeliveryReceipt(
            provider="sandbox",
            idempotency_key=key,
            provider_message_id="bz_1",
            status=ReceiptStatus(status),
            channel=channel,
            error_code="E",
        )
        records.append(await store.record_receipt(receipt))
    logged = await store.get_message(key)
    assert logged is not None
    assert ((logged.receipt_status, logged.receipt_channel) if logged.receipt_status else None) == settled
    interim = [r.interim for r in records if r]
    assert interim[0] is (reports[0] == ("alimtalk", "failed"))


@pytest.mark.parametrize("given", [None, "", "bz_2", "BZ_1", "bz_1 "])
async def test_a_receipt_settles_a_message_only_by_the_message_id_logged_for_it(
    store: Store, given: str | None
) -> None:
    """A key is guessable: where the log holds the provider's message id, a receipt must name it exactly."""
    key = message()["idempotency_key"]
    await store.claim_message(**message())
    await store.finish_message(key, MessageStatus.ACCEPTED, provider_message_id="bz_1")
    forged = DeliveryReceipt(
        provider="sandbox", idempotency_key=key, provider_message_id=given or None, status=ReceiptStatus.FAILED
    )
    assert await store.record_receipt(forged) is None
    logged = await store.get_message(key)
    assert logged is not None and logged.receipt_status is None
    real = forged.model_copy(update={"provider_message_id": "bz_1", "status": ReceiptStatus.DELIVERED})
    settled = await store.record_receipt(real)
    assert settled is not None and settled.message.receipt_status == "delivered"


async def test_a_batch_of_receipts_is_answered_in_its_own_order(store: Store) -> None:
    keys = [message(f"post-purchase:o-{i}:payment_complete:alimtalk")["idempotency_key"] for i in (1, 2)]
    for key in keys:
        await store.claim_message(**message(key))
        await store.finish_message(key, MessageStatus.ACCEPTED)
    delivered, failed = (
        DeliveryReceipt(provider="sandbox", idempotency_key=keys[1], status=ReceiptStatus.DELIVERED),
        DeliveryReceipt(provider="sandbox", idempotency_key=keys[0], status=ReceiptStatus.FAILED, error_code="X"),
    )
    unknown = DeliveryReceipt(provider="sandbox", idempotency_key="nope", status=ReceiptStatus.DELIVERED)
    stale = delivered.model_copy(update={"status": ReceiptStatus.FAILED})
    records = await store.record_receipts([delivered, unknown, failed, stale])
    assert [(r.message.idempotency_key, r.duplicate) if r else None for r in records] == [
        (keys[1], False),
        None,
        (keys[0], False),
        (keys[1], True),
    ]
    logged = {m.idempotency_key: (m.receipt_status, m.receipt_error_code) for m in await store.messages()}
    assert logged == {keys[0]: ("failed", "X"), keys[1]: ("delivered", None)}  # the first receipt wins


async def test_concurrent_batches_sharing_messages_all_land(store: Store) -> None:
    """Rows are locked in key order: batches in opposite orders neither deadlock nor lose a receipt."""
    keys = [message(f"post-purchase:o-{i}:payment_complete:alimtalk")["idempotency_key"] for i in range(20)]
    for key in keys:
        await store.claim_message(**message(key))
    receipts = [DeliveryReceipt(provider="sandbox", idempotency_key=k, status=ReceiptStatus.DELIVERED) for k in keys]
    batches = await asyncio.gather(*(store.record_receipts(b) for b in [receipts, receipts[::-1]] * 3))
    assert all(r is not None for batch in batches for r in batch)
    assert sum(not r.duplicate for batch in batches for r in batch if r) == len(keys)
    assert {m.receipt_status for m in await store.messages()} == {"delivered"}


async def test_hostile_text_is_stored_verbatim(store: Store) -> None:
    name = "Robert'); DROP TABLE customers;--"
    await store.upsert_customer(profile(name=name))
    got = await store.get_customer("c-1")
    assert got is not None and got.name == name


@pytest.mark.parametrize("limit", [0, 1, 3])
async def test_events_are_counted_up_to_their_limit_per_journey_type_and_bucket(store: Store, limit: int) -> None:
    assert [await store.count_event("w-1", "order.shipped", limit=limit) for _ in range(5)] == [True] * limit + [
        False
    ] * (5 - limit)
    # Another journey, another type and another bucket each count from zero.
    assert await store.count_event("w-2", "order.shipped", limit=1)
    assert await store.count_event("w-1", "order.delivered", limit=1)
    assert await store.count_event("w-1", "order.shipped", limit=1, bucket="2026-12-06")
    # A higher limit later lets more through, counted from where the count stands.
    assert await store.count_event("w-1", "order.shipped", limit=limit + 1)
    assert not await store.count_event("w-1", "order.shipped", limit=limit + 1)


async def test_concurrent_events_are_counted_exactly_to_the_limit(store: Store) -> None:
    counted = await asyncio.gather(*(store.count_event("w-1", "purchase", limit=7) for _ in range(20)))
    assert sum(counted) == 7


async def test_an_event_is_admitted_once_by_id_and_up_to_the_limit(store: Store) -> None:
    from durable_journeys.activities.store import EventAdmission

    admit = store.admit_event
    assert await admit("w-1", "e-1", "order.shipped", limit=2) is EventAdmission.ADMITTED
    await store.remember_event("w-1", "e-1")
    # Seen: not counted again, whatever the limit.
    assert await admit("w-1", "e-1", "order.shipped", limit=2) is EventAdmission.SEEN
    assert await admit("w-1", "e-1", "order.shipped", limit=None) is EventAdmission.SEEN
    assert await admit("w-1", "e-2", "order.shipped", limit=2) is EventAdmission.ADMITTED
    assert await admit("w-1", "e-3", "order.shipped", limit=2) is EventAdmission.LIMITED
    assert await admit("w-1", None, "order.shipped", limit=2) is EventAdmission.LIMITED
    # No limit: only the id is checked, and nothing is counted.
    assert await admit("w-1", "e-3", "order.shipped", limit=None) is EventAdmission.ADMITTED
    assert await admit("w-1", None, "app.opened", limit=None) is EventAdmission.ADMITTED
    # The id is per journey.
    assert await admit("w-2", "e-1", "order.shipped", limit=1) is EventAdmission.ADMITTED


@pytest.mark.parametrize("burst", [16, 60])
async def test_a_burst_of_calls_shares_the_connections_the_pool_keeps(store: Store, burst: int) -> None:
    """A store opens at most its pool's connections, however many calls come at once, and keeps them.

    (SQLAlchemy's default pool opened a connection for each call over its five and closed it
    after: hundreds of connections for one burst of journeys.)
    """
    from sqlalchemy import event

    from durable_journeys.activities.store._base import POOL_SIZE

    opened: list[object] = []
    event.listen(store.engine.sync_engine.pool, "connect", lambda *_: opened.append(1))
    for i in range(burst):
        await store.upsert_customer(profile(customer_id=f"c-{i}"))
    for _ in range(3):
        got = await asyncio.gather(*(store.get_customer(f"c-{i}") for i in range(burst)))
        assert [p.customer_id if p else None for p in got] == [f"c-{i}" for i in range(burst)]
    assert len(opened) <= POOL_SIZE, len(opened)
    assert store.engine.sync_engine.pool.size() == POOL_SIZE  # type: ignore[attr-defined]


@pytest.mark.parametrize("pool_size", [1, 3])
async def test_the_pool_size_is_what_the_caller_asks_for(tmp_path: Path, pool_size: int) -> None:
    from sqlalchemy import event

    async with migrated_store("sqlite", tmp_path):  # the schema, in store.db
        pass
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", pool_size=pool_size)
    try:
        opened: list[object] = []
        event.listen(store.engine.sync_engine.pool, "connect", lambda *_: opened.append(1))
        got = await asyncio.gather(*(store.get_customer(f"c-{i}") for i in range(20)))
        assert got == [None] * 20 and len(opened) == pool_size
    finally:
        await store.close()


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
async def test_an_in_memory_store_keeps_its_one_connection(url: str) -> None:
    store = Store.from_url(url)
    try:
        await store.migrate()
        await store.upsert_customer(profile())
        assert (await store.get_customer("c-1")) is not None  # the same database, not a new empty one
    finally:
        await store.close()
