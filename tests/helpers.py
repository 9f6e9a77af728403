"""Bounded poll-and-assert, for the rare wait that has no handle to await; stores on a fresh PostgreSQL schema."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from durable_journeys.activities import Store
from durable_journeys.starter.stack import Stack
from durable_journeys.starter.testing import migrated_sqlite
from durable_journeys.workflows import Outcome
from tests.factories import customer, order

T = TypeVar("T")
POSTGRES_URL = os.environ.get("JOURNEYS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@asynccontextmanager
async def postgres_stores(count: int = 1) -> AsyncIterator[list[Store]]:
    """``count`` stores (separate pools, as separate processes have) on a fresh schema, dropped after.

    PostgreSQL is required in CI (the test fails); elsewhere an unreachable server skips the test.
    """
    schema = f"journeys_test_{uuid.uuid4().hex[:12]}"
    admin = Store.from_url(POSTGRES_URL)
    try:
        async with admin.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except (OSError, ConnectionError) as exc:
        await admin.close()
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and is unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}")
    stores = [
        Store.from_url(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}}) for _ in range(count)
    ]
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()
        async with admin.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.close()


async def eventually(probe: Callable[[], Awaitable[T]], *, timeout: float = 10.0) -> T:
    """Call ``probe`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        await asyncio.sleep(0.05)


async def alimtalk_waiting_for_receipt(stack: Stack) -> tuple[str, dict[str, Any]]:
    """Start a journey whose AlimTalk gets no receipt from the sandbox (…0002); once the journey
    has it as sent, return the journey's id and the sandbox's record of that AlimTalk."""
    c = customer("010-0000-0002")
    handle = await stack.journeys.order_paid(order(c), c)

    async def sent() -> bool:
        return any(e.outcome is Outcome.SENT for e in await stack.journeys.timeline(handle.id))

    await eventually(sent)
    [message] = [m for m in stack.sandbox.messages.values() if m["channel"] == "alimtalk"]
    return handle.id, message


def message(key: str = "post-purchase:o-1:payment_complete:alimtalk") -> dict[str, str]:
    """The fields of a payment AlimTalk to claim in the message log (``Store.claim_message``)."""
    return {
        "idempotency_key": key,
        "workflow_id": "post-purchase:o-1",
        "step": "payment_complete",
        "channel": "alimtalk",
        "customer_id": "c-1",
        "provider": "sandbox",
        "purpose": "informational",
        "template": "order_paid",
    }


@asynccontextmanager
async def migrated_store(kind: str, directory: Path) -> AsyncIterator[Store]:
    """A migrated store: a SQLite file in ``directory``, or PostgreSQL on a fresh schema (``kind``)."""
    if kind == "sqlite":
        path = directory / "store.db"
        if not path.exists():
            path.write_bytes(await migrated_sqlite())
        store = Store.from_url(f"sqlite+aiosqlite:///{path}")
        await store.migrate()  # current already: it only reads the revision
        try:
            yield store
        finally:
            await store.close()
        return
    async with postgres_stores() as (store,):
        await store.migrate()
        yield store
