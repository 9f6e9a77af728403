"""Experiment assignment: a pure function of experiment and customer, kept once taken, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_journeys.activities.experiments import bucket, in_holdout, pick_variant
from durable_journeys.activities.store import Store
from tests.helpers import migrated_store

AT = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
ARMS = [("12h", 1), ("24h", 1)]
names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=64)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with migrated_store(request.param, tmp_path) as s:
        yield s


@given(names, names, st.lists(st.integers(0, 100), min_size=1, max_size=6))
def test_the_assignment_is_a_pure_function_and_never_picks_a_zero_weight(
    experiment: str, customer: str, weights: list[int]
) -> None:
    arms = [(f"v{i}", w) for i, w in enumerate(weights)]
    picked = pick_variant(experiment, customer, arms)
    assert picked == pick_variant(experiment, customer, list(arms))  # same inputs, same answer, any process
    if any(weights):
        assert dict(arms)[picked] > 0
    else:
        assert picked == "v0"


@pytest.mark.parametrize("weights", [(1, 1), (1, 3), (2, 1, 1)])
def test_the_weights_share_out_customers(weights: tuple[int, ...]) -> None:
    arms = [(f"v{i}", w) for i, w in enumerate(weights)]
    counts = Counter(pick_variant("exp", f"c-{n}", arms) for n in range(20_000))
    for name, weight in arms:
        assert counts[name] / 20_000 == pytest.approx(weight / sum(weights), abs=0.015)


def test_experiments_are_independent_of_each_other_and_of_the_holdout() -> None:
    customers = [f"c-{n}" for n in range(10_000)]
    first = {c: pick_variant("one", c, ARMS) for c in customers}
    second = Counter((first[c], pick_variant("two", c, ARMS)) for c in customers)
    assert all(n / 10_000 == pytest.approx(0.25, abs=0.02) for n in second.values())  # no correlation
    held = [c for c in customers if in_holdout(c, 10)]
    assert len(held) / 10_000 == pytest.approx(0.10, abs=0.01)
    assert Counter(first[c] for c in held)["12h"] / len(held) == pytest.approx(0.5, abs=0.06)
    assert bucket("holdout", "c-1") != bucket("experiment:holdout", "c-1")


@given(names, st.floats(0, 50))
def test_the_holdout_share_grows_with_its_setting_and_forced_customers_are_always_in(
    customer: str, percent: float
) -> None:
    if in_holdout(customer, percent):
        assert in_holdout(customer, min(percent + 5, 50))
    assert in_holdout(customer, 0, forced=[customer])
    assert not in_holdout(customer, 0)


async def assign(store: Store, customer: str, arms: list[tuple[str, int]] = ARMS, exp: str = "exp") -> tuple[str, str]:
    return await store.assign_variant(exp, customer, arms, journey="cart", workflow_id=f"cart:{customer}", at=AT)


async def test_the_first_assignment_holds_whatever_the_weights_become(store: Store) -> None:
    variant, how = await assign(store, "c1")
    assert (variant, how) == (pick_variant("exp", "c1", ARMS), "assigned")
    other = "24h" if variant == "12h" else "12h"
    await store.set_experiment("exp", state="running", weights={variant: 0, other: 1}, changed_by="ops", reason="r")
    assert await assign(store, "c1") == (variant, "kept")
    assert await assign(store, "c1", [(n, 1 if n == other else 0) for n, _ in ARMS]) == (variant, "kept")
    assert [await assign(store, f"new-{n}") for n in range(5)] == [(other, "assigned")] * 5  # new weights
    assert await store.experiment_variants("exp") == sorted({variant, other})


async def test_a_winner_or_a_stop_rules_new_splits_and_counts_nobody(store: Store) -> None:
    await store.set_experiment("exp", state="winner", winner="24h", changed_by="ops", reason="B sells")
    assert [await assign(store, f"c{n}") for n in range(4)] == [("24h", "winner")] * 4
    await store.set_experiment("exp", state="stopped", changed_by="ops", reason="pause")
    assert await assign(store, "c9") == ("12h", "stopped")  # the split's first variant
    assert await store.experiment_variants("exp") == []
    await store.set_experiment("exp", state="winner", winner="nope", changed_by="ops", reason="typo")
    assert (await assign(store, "c10"))[1] == "assigned"  # a winner the split does not have is ignored
    setting = await store.experiment_setting("exp")
    assert setting is not None and (setting.state, setting.changed_by, setting.reason) == ("winner", "ops", "typo")


async def test_a_forced_variant_is_taken_and_its_arm_starts_at_the_split(store: Store) -> None:
    await store.force_variant("exp", "c1", "24h", at=datetime(2020, 1, 1, tzinfo=UTC))
    assert await assign(store, "c1") == ("24h", "forced")
    assert await assign(store, "c1") == ("24h", "kept")
    (row,) = await store.assignments(since=datetime(2000, 1, 1, tzinfo=UTC), until=datetime(2100, 1, 1, tzinfo=UTC))
    assert (row.variant, row.how, row.workflow_id, row.assigned_at) == ("24h", "forced", "cart:c1", AT)


async def test_a_variant_the_split_no_longer_has_is_assigned_again(store: Store) -> None:
    await store.force_variant("exp", "c1", "48h")
    variant, how = await assign(store, "c1")
    assert (variant, how) == (pick_variant("exp", "c1", ARMS), "assigned")
    assert await store.experiment_variants("exp") == [variant]


async def test_racing_journeys_of_one_customer_take_one_variant(store: Store) -> None:
    answers = await asyncio.gather(*(assign(store, "c1") for _ in range(12)))
    assert len({variant for variant, _ in answers}) == 1
    assert len(await store.assignments(since=AT, until=datetime(2100, 1, 1, tzinfo=UTC))) == 1


@settings(max_examples=30, deadline=None)
@given(st.lists(names, min_size=1, max_size=10, unique=True))
def test_every_customer_gets_the_same_answer_from_the_store_as_from_the_function(customers: list[str]) -> None:
    async def run() -> None:
        s = Store.from_url("sqlite+aiosqlite:///:memory:")
        await s.migrate()
        try:
            for c in customers:
                assert await assign(s, c) == (pick_variant("exp", c, ARMS), "assigned")
        finally:
            await s.close()

    asyncio.run(run())
