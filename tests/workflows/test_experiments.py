"""Experiments in journeys: the split step, the global holdout and live settings, on the time-skipping server.

The reference experiment is the cart coupon after 12 h against 24 h (``CartSettings.coupon_experiment``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel, CustomerProfile
from durable_journeys.activities.experiments import pick_variant
from durable_journeys.activities.store import SkipRecord
from durable_journeys.starter.errors import InvalidInput
from durable_journeys.starter.kit_parts import SentMessage
from durable_journeys.starter.testing import JourneyKit, journey_kit
from durable_journeys.workflows import CartSettings, JourneyResult, Outcome, cart_id
from durable_journeys.workflows.cart_abandonment import COUPON_EXPERIMENT
from tests import factories
from tests.workflows.test_cart_abandonment import CART, shopper

EXPERIMENT_CART = CartSettings(
    coupon_experiment=True,
    coupon_variants={"12h": timedelta(hours=12), "24h": timedelta(hours=24), "control": timedelta(hours=24)},
)


@pytest.mark.parametrize(("variant", "coupon_after"), [("12h", timedelta(hours=12)), ("24h", timedelta(hours=24))])
async def test_each_variant_sends_the_coupon_after_its_own_wait(
    env: WorkflowEnvironment, tmp_path: Path, variant: str, coupon_after: timedelta
) -> None:
    c = shopper(kakao=True)
    async with journey_kit(env, tmp_path / "j.db", cart=EXPERIMENT_CART) as kit:
        await kit.force_variant(COUPON_EXPERIMENT, c.customer_id, variant)
        async with kit.worker():
            handle = await kit.journeys.cart_updated(c.customer_id, CART, customer=c)
            result = await handle.result()
        sent = await kit.sent(customer_id=c.customer_id)
    assert result.outcome == "completed"
    assert [(m.step, m.channel, m.experiment, m.variant) for m in sent] == [
        ("cart_reminder", Channel.PUSH, None, None),  # sent before the split
        ("cart_coupon", Channel.BRAND_MESSAGE, COUPON_EXPERIMENT, variant),
    ]
    assert sent[1].journey_time is not None and sent[0].journey_time is not None
    assert abs(sent[1].journey_time - sent[0].journey_time - coupon_after) < timedelta(seconds=5)
    (split,) = [e for e in result.timeline if e.outcome is Outcome.SPLIT]
    assert (split.step, split.detail) == (f"split:{COUPON_EXPERIMENT}", f"{variant} (forced)")


async def test_the_control_arm_gets_no_coupon(env: WorkflowEnvironment, tmp_path: Path) -> None:
    c = shopper(kakao=True)
    async with journey_kit(env, tmp_path / "j.db", cart=EXPERIMENT_CART) as kit:
        await kit.force_variant(COUPON_EXPERIMENT, c.customer_id, "control")
        async with kit.worker():
            handle = await kit.journeys.cart_updated(c.customer_id, CART, customer=c)
            result = await handle.result()
        sent = await kit.sent(customer_id=c.customer_id)
    assert result.outcome == "control"
    assert [m.step for m in sent] == ["cart_reminder"]


async def test_without_the_experiment_the_cart_never_splits(env: WorkflowEnvironment, tmp_path: Path) -> None:
    c = shopper(kakao=True)
    async with journey_kit(env, tmp_path / "j.db") as kit:
        async with kit.worker():
            handle = await kit.journeys.cart_updated(c.customer_id, CART, customer=c)
            result = await handle.result()
        assert await kit.stack.store.experiment_variants(COUPON_EXPERIMENT) == []
    assert not [e for e in result.timeline if e.outcome is Outcome.SPLIT]


async def _coupon_runs(kit: JourneyKit, *customers: CustomerProfile) -> list[tuple[JourneyResult, list[SentMessage]]]:
    """Each customer's cart journey to its end (two days of journey time are enough for every variant).

    The results are read after the kit moved time on: results awaited together would hold the
    time-skipping server's clock still once one of them is in.
    """
    handles = [await kit.journeys.cart_updated(c.customer_id, CART, customer=c) for c in customers]
    await kit.advance(timedelta(days=2))
    results: list[JourneyResult] = [await h.result() for h in handles]
    return [(r, await kit.sent(workflow_id=cart_id(c.customer_id))) for r, c in zip(results, customers, strict=True)]


def _sent_at(result: JourneyResult, step: str) -> datetime:
    (at,) = [e.at for e in result.timeline if e.step == step and e.outcome is Outcome.SENT]
    return at


def _split(result: JourneyResult) -> str | None:
    found = [e.detail for e in result.timeline if e.outcome is Outcome.SPLIT]
    assert len(found) <= 1, found
    return found[0] if found else None


async def test_a_customer_keeps_the_variant_in_every_later_run(env: WorkflowEnvironment, tmp_path: Path) -> None:
    c = shopper(kakao=True)
    async with journey_kit(env, tmp_path / "j.db", cart=EXPERIMENT_CART) as kit:
        async with kit.worker():
            ((first, _),) = await _coupon_runs(kit, c)
            await kit.stack.store.set_experiment(
                COUPON_EXPERIMENT,
                state="running",
                weights={"12h": 0, "24h": 0, "control": 1},
                changed_by="t",
                reason="t",
            )
            ((second, _),) = await _coupon_runs(kit, c)
        (taken,) = await kit.stack.store.experiment_variants(COUPON_EXPERIMENT)
    assert _split(first) == f"{taken} (assigned)"
    assert _split(second) == f"{taken} (kept)"  # new weights are for new customers
    assert taken == pick_variant(COUPON_EXPERIMENT, c.customer_id, [("12h", 1), ("24h", 1), ("control", 1)])


@pytest.mark.parametrize(
    ("setting", "variant", "coupon_after"),
    [
        ({"state": "winner", "winner": "24h"}, "24h", timedelta(hours=24)),
        ({"state": "stopped"}, "12h", timedelta(hours=12)),  # the first variant
        ({"state": "running", "weights": {"12h": 0, "24h": 1, "control": 0}}, "24h", timedelta(hours=24)),
    ],
    ids=["winner", "stopped", "weights"],
)
async def test_an_operator_s_live_setting_rules_new_splits(
    env: WorkflowEnvironment, tmp_path: Path, setting: dict[str, Any], variant: str, coupon_after: timedelta
) -> None:
    customers = [shopper(kakao=True) for _ in range(3)]
    async with journey_kit(env, tmp_path / "j.db", cart=EXPERIMENT_CART) as kit:
        await kit.stack.store.set_experiment(COUPON_EXPERIMENT, changed_by="ops", reason="test", **setting)
        async with kit.worker():
            runs = await _coupon_runs(kit, *customers)
        counted = await kit.stack.store.experiment_variants(COUPON_EXPERIMENT)
    for result, sent in runs:
        assert [(m.step, m.variant) for m in sent] == [("cart_reminder", None), ("cart_coupon", variant)]
        assert abs(_sent_at(result, "cart_coupon") - _sent_at(result, "cart_reminder") - coupon_after) < timedelta(
            seconds=5
        )
    how = setting["state"] if setting["state"] != "running" else "assigned"
    assert {_split(r) for r, _ in runs} == {f"{variant} ({how})"}
    assert counted == ([] if how != "assigned" else [variant])  # a winner or a stop counts nobody


async def test_the_holdout_gets_no_ad_from_any_journey_and_its_informational_messages(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    held, exposed = shopper(kakao=True), shopper(kakao=True)
    async with journey_kit(env, tmp_path / "j.db", cart=EXPERIMENT_CART) as kit:
        kit.holdout(held.customer_id)
        await kit.force_variant(COUPON_EXPERIMENT, exposed.customer_id, "24h")  # not the control arm
        async with kit.worker():
            for c in (held, exposed):
                await kit.journeys.cart_updated(c.customer_id, CART, customer=c)
            await kit.advance(timedelta(days=2))
            for c in (held, exposed):
                await kit.journeys.order_paid(factories.order(c, paid_at=await kit.now()), c)
            await kit.advance(timedelta(hours=1))
        skips = {(s.customer_id, s.step, s.reason) for s in await _skips(kit)}
        sent = {
            c.customer_id: [(m.step, m.purpose) for m in await kit.sent(customer_id=c.customer_id)]
            for c in (held, exposed)
        }
    assert (held.customer_id, "cart_reminder", "holdout") in skips
    assert (held.customer_id, "cart_coupon", "holdout") in skips
    assert not [s for s in skips if s[0] == exposed.customer_id]
    assert sent[held.customer_id] == [("payment_complete", "informational")]
    assert [step for step, _ in sent[exposed.customer_id]] == ["cart_reminder", "cart_coupon", "payment_complete"]


async def _skips(kit: JourneyKit) -> list[SkipRecord]:
    _, skips, _, _ = await kit.stack.store.report_rows(
        since=datetime(2000, 1, 1, tzinfo=UTC), until=await kit.now() + timedelta(days=1), attribution=timedelta(0)
    )
    return skips


async def test_an_app_changes_an_experiment_through_the_facade(env: WorkflowEnvironment, tmp_path: Path) -> None:
    async with journey_kit(env, tmp_path / "j.db", cart=EXPERIMENT_CART) as kit:
        assert await kit.journeys.experiment(COUPON_EXPERIMENT) is None
        await kit.force_variant(COUPON_EXPERIMENT, "c-1", "12h")
        setting = await kit.journeys.set_experiment(COUPON_EXPERIMENT, winner="12h", operator="mina", reason="sells")
        assert (setting.state, setting.winner, setting.changed_by, setting.reason) == ("winner", "12h", "mina", "sells")
        again = await kit.journeys.set_experiment(COUPON_EXPERIMENT, operator="mina", reason="rerun")
        assert (again.state, again.winner, again.weights) == ("running", None, None)
        assert await kit.journeys.experiment(COUPON_EXPERIMENT) == again


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"winner": "12h", "stop": True}, "one change at a time"),
        ({"winner": "36h"}, "winner: no customer took 36h"),
        ({"weights": {"12h": 0}}, "at least one above 0"),
        ({"weights": {f"v{n}": 1 for n in range(21)}}, "weights"),
        ({"weights": {"12h": 10_001}}, "weights"),
        ({"winner": "a\nb"}, "winner"),
        ({"stop": True, "reason": ""}, "reason"),
        ({"stop": True, "operator": "x" * 65}, "operator"),
        ({"stop": True, "experiment": "../etc"}, "experiment"),
    ],
    ids=["two", "unknown", "zero", "many", "heavy", "newline", "no-reason", "long-operator", "bad-name"],
)
async def test_a_wrong_change_from_an_app_is_one_line(
    env: WorkflowEnvironment, tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    args: dict[str, Any] = {"experiment": COUPON_EXPERIMENT, "operator": "mina", "reason": "r", **change}
    async with journey_kit(env, tmp_path / "j.db") as kit:
        await kit.force_variant(COUPON_EXPERIMENT, "c-1", "12h")
        with pytest.raises(InvalidInput) as raised:
            await kit.journeys.set_experiment(args.pop("experiment"), **args)
        assert await kit.journeys.experiment(COUPON_EXPERIMENT) is None
    message = str(raised.value)
    assert problem in message and "\n" not in message


async def test_a_shop_s_own_journey_branches_on_its_split(journey_kit: JourneyKit) -> None:
    """Each customer's branch is the function's pick (a mapping of weights); a second split returns it again."""
    from tests.workflows.split_journey import GUIDE_SPLIT, GuideInput, SplitGuideJourney

    customers = [factories.customer(app_installed=True) for _ in range(8)]
    async with journey_kit.worker(SplitGuideJourney):
        for c in customers:
            await journey_kit.set_profile(c)
        handles = [await journey_kit.start(SplitGuideJourney, GuideInput(customer_id=c.customer_id)) for c in customers]
        results = [await h.result() for h in handles]
    arms = [("in_app", 2), ("email", 1), ("control", 1)]
    for c, handle, result in zip(customers, handles, results, strict=True):
        variant = pick_variant(GUIDE_SPLIT, c.customer_id, arms)
        sent = await journey_kit.sent(workflow_id=handle.id)
        expected = [] if variant == "control" else [("guide", Channel(variant), GUIDE_SPLIT, variant)]
        assert [(m.step, m.channel, m.experiment, m.variant) for m in sent] == expected
        assert result.outcome == ("control" if variant == "control" else f"{variant}/{variant}")
        assert [e.detail for e in result.timeline if e.outcome is Outcome.SPLIT] == [f"{variant} (assigned)"]
