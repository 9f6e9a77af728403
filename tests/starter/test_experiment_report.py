"""The report's experiments: exact arms over journeys the testing kit ran, the test and the verdict in words."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment

from durable_journeys.starter.experiment_report import Arm, judge, needed_per_arm
from durable_journeys.starter.report import Report, render, render_experiments_csv
from durable_journeys.starter.testing import journey_kit
from durable_journeys.workflows.cart_abandonment import COUPON_EXPERIMENT
from tests import factories
from tests.starter.test_cli import journeys
from tests.workflows.test_cart_abandonment import CART, shopper
from tests.workflows.test_experiments import EXPERIMENT_CART


async def _scripted_report(env: WorkflowEnvironment, tmp_path: Path) -> Report:
    """Seven shoppers through the cart experiment (three arms) and the holdout, then some buy.

    12h: a buys 50,000 on day 2, b does not, c buys 20,000 on day 3. 24h: d buys on day 11 (past
    the 7-day window), e does not. control: f does not. g is in the holdout and buys 10,000 on day 2.
    """
    people = {name: shopper(kakao=True) for name in "abcdefg"}
    arms = {"a": "12h", "b": "12h", "c": "12h", "d": "24h", "e": "24h", "f": "control"}
    async with journey_kit(env, tmp_path / "j.db", cart=EXPERIMENT_CART) as kit:
        for name, variant in arms.items():
            await kit.force_variant(COUPON_EXPERIMENT, people[name].customer_id, variant)
        kit.holdout(people["g"].customer_id)

        async def buy(name: str, amount: int) -> None:
            c = people[name]
            await kit.journeys.order_paid(factories.order(c, amount=amount, paid_at=await kit.now()), c)

        async with kit.worker():
            for c in people.values():
                await kit.journeys.cart_updated(c.customer_id, CART, customer=c)
            await kit.advance(timedelta(days=2))  # every coupon is out (the 24h one 25 h after the cart)
            await buy("a", 50_000)
            await buy("g", 10_000)
            await kit.advance(timedelta(days=1))
            await buy("c", 20_000)
            await kit.advance(timedelta(days=8))
            await buy("d", 70_000)
            await kit.advance(timedelta(hours=1))
            return await kit.report(journey="cart")


async def test_the_report_counts_each_arm_and_the_holdout_exactly(env: WorkflowEnvironment, tmp_path: Path) -> None:
    report = await _scripted_report(env, tmp_path)
    by_name = {e.experiment: e for e in report.experiments}
    assert list(by_name) == [COUPON_EXPERIMENT, "holdout"]
    experiment = by_name[COUPON_EXPERIMENT]
    counts = ("customers", "sent", "delivered", "opened", "clicked", "converted", "revenue", "cost")
    assert [(a.variant, *(getattr(a, n) for n in counts)) for a in experiment.arms] == [
        ("control", 1, 0, 0, 0, 0, 0, 0, 0.0),  # no coupon
        ("12h", 3, 3, 3, 0, 0, 2, 70_000, 45.0),  # three Brand Message coupons at 15 won
        ("24h", 2, 2, 2, 0, 0, 0, 0, 30.0),  # d bought 10 days after the split: outside the window
    ]
    # 2 of 6 converted over three arms: Pearson's chi-squared is 3.0 on 2 degrees of freedom.
    assert experiment.test == "chi-squared"
    assert experiment.p_value == pytest.approx(math.exp(-1.5))
    assert (experiment.leader, experiment.against, experiment.significant) == ("12h", "control", False)
    assert experiment.more_per_arm == 6  # 7 per arm tell 66.7 % from 0 %; the control has 1
    assert experiment.verdict == (
        "not yet significant: about 6 more customers per arm (12h 66.7% against control 0.0%; chi-squared, p = 0.223)"
    )
    holdout = by_name["holdout"]
    assert [(a.variant, a.customers, a.sent, a.converted, a.revenue, a.cost) for a in holdout.arms] == [
        ("exposed", 6, 11, 2, 70_000, 75.0),  # every push and coupon of a-f; a and c bought within 7 days
        ("holdout", 1, 0, 1, 10_000, 0.0),  # g: two ads held back, one order
    ]
    rows = {(r.step, r.channel): r for r in report.rows}
    assert (rows["cart_coupon", "brand_message"].revenue, rows["cart_coupon", "brand_message"].cost) == (70_000, 75.0)
    assert (rows["cart_reminder", "push"].sent, rows["cart_reminder", "push"].cost) == (6, 0.0)
    assert rows["cart_reminder", "push"].skipped == {"holdout": 1}

    table = render(report, "table")
    assert f"verdict: {experiment.verdict}" in table and f"verdict: {holdout.verdict}" in table
    arms_csv = list(csv.DictReader(io.StringIO(render_experiments_csv(report))))
    assert [(r["experiment"], r["variant"], r["customers"], r["converted"], r["revenue"]) for r in arms_csv] == [
        (COUPON_EXPERIMENT, "control", "1", "0", "0"),
        (COUPON_EXPERIMENT, "12h", "3", "2", "70000"),
        (COUPON_EXPERIMENT, "24h", "2", "0", "0"),
        ("holdout", "exposed", "6", "2", "70000"),
        ("holdout", "holdout", "1", "1", "10000"),
    ]
    as_json = json.loads(render(report, "json"))
    assert [a["conversion"] for a in as_json["experiments"][0]["arms"]] == [0.0, pytest.approx(2 / 3), 0.0]
    page = render(report, "html")
    assert page.count('data-experiment="cart_coupon_timing"') == 3
    assert 'data-variant="12h">66.7% (2 / 3)</text>' in page


def arm(variant: str, customers: int, converted: int) -> Arm:
    return Arm(variant=variant, customers=customers, converted=converted)


@pytest.mark.parametrize(
    ("arms", "test", "verdict"),
    [
        (
            [arm("A", 200, 40), arm("B", 200, 10)],
            "chi-squared",
            r"A converts 4\.0x B, significant at 95 % \(chi-squared, p = 1\.\d+e-05\)",
        ),
        ([arm("control", 200, 10), arm("B", 200, 40)], "chi-squared", r"B converts 4\.0x control, significant"),
        ([arm("A", 20, 6), arm("B", 20, 0)], "fisher-exact", r"A converts 30\.0% against 0% for B, significant"),
        ([arm("A", 10, 2), arm("B", 10, 1)], "fisher-exact", r"not yet significant: about 189 more customers per arm"),
        ([arm("A", 10, 2), arm("B", 10, 2)], "fisher-exact", r"not yet significant: no difference between A and B yet"),
        ([arm("A", 10, 0), arm("B", 10, 0)], None, r"not yet significant: no conversions yet$"),
        ([arm("A", 10, 10), arm("B", 5, 5)], None, r"not yet significant: every customer converted$"),
        ([arm("A", 10, 3), arm("B", 0, 0)], None, r"not yet significant: fewer than two arms have customers$"),
    ],
    ids=["chi2", "control-baseline", "fisher-significant", "more-needed", "no-difference", "none", "all", "one-arm"],
)
def test_the_verdict_in_plain_words(arms: list[Arm], test: str | None, verdict: str) -> None:
    result = judge("exp", arms)
    assert result.test == test
    assert re_match(verdict, result.verdict)


def re_match(pattern: str, text: str) -> bool:
    import re

    assert re.match(pattern, text), (pattern, text)
    return True


@pytest.mark.parametrize(
    ("p1", "p2", "n"),
    [(0.10, 0.15, 686), (0.20, 0.30, 294), (0.05, 0.10, 435)],  # Fleiss, without continuity correction
)
def test_customers_needed_per_arm_match_the_textbook(p1: float, p2: float, n: int) -> None:
    assert needed_per_arm(p1, p2) == n


@settings(deadline=None)  # the first example imports SciPy
@given(
    st.integers(1, 400),
    st.integers(1, 400),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_a_verdict_never_calls_a_lower_rate_the_winner(n1: int, n2: int, r1: float, r2: float) -> None:
    a, b = arm("A", n1, round(n1 * r1)), arm("B", n2, round(n2 * r2))
    result = judge("exp", [a, b])
    if result.significant:
        winner, loser = (a, b) if result.leader == "A" else (b, a)
        assert (winner.conversion or 0) > (loser.conversion or 0)
        assert result.p_value is not None and result.p_value < 0.05
    if result.more_per_arm is not None:
        assert result.more_per_arm >= 1 and not result.significant


def test_operators_change_an_experiment_live_from_the_command_line(tmp_path: Path) -> None:
    import asyncio

    from durable_journeys.activities.store import Store

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    async def seed() -> None:
        s = Store.from_url(url)
        await s.migrate()
        for n, variant in enumerate(["12h", "24h"]):
            await s.force_variant(COUPON_EXPERIMENT, f"c{n}", variant)
        await s.close()

    asyncio.run(seed())
    env = {"JOURNEYS_DATABASE_URL": url}
    shown = journeys("experiment", COUPON_EXPERIMENT, env=env)
    assert shown.returncode == 0 and "running as the journey declares it" in shown.stdout
    steps = [
        (["--weights", "12h=1,24h=3"], "running with weights {'12h': 1, '24h': 3}"),
        (["--winner", "24h"], "winner 24h: every customer takes it from now on"),
        (["--stop"], "stopped: new customers take the first variant"),
        (["--resume"], "running (the journey's weights)"),
    ]
    for args, said in steps:
        done = journeys("experiment", COUPON_EXPERIMENT, *args, "-o", "kim", "-r", "weekly review", env=env)
        assert done.returncode == 0, done.stderr
        assert said in done.stdout and "set by kim" in done.stdout and "weekly review" in done.stdout


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--weights", "12h=one", "-r", "x"], "--weights"),
        (["--weights", "12h=0", "-r", "x"], "--weights"),
        (["--weights", "=1", "-r", "x"], "--weights"),
        (["--stop", "--winner", "12h", "-r", "x"], "--winner"),
        (["--stop"], "--reason"),
        (["--stop", "-r", "a\x1b[31mb"], "--reason"),
        (["--winner", "a b", "-r", "x"], "--winner"),
        (["--weights", ",".join(f"v{n}=1" for n in range(21)), "-r", "x"], "--weights"),
        (["--stop", "-r", "x", "-o", "a\nb"], "--operator"),
        (["--stop", "-r", "x"], "NAME"),
    ],
    ids=[
        "not-a-number",
        "all-zero",
        "no-name",
        "two-changes",
        "no-reason",
        "control-chars",
        "bad-winner",
        "too-many",
        "bad-operator",
        "bad-name",
    ],
)
def test_a_wrong_experiment_change_is_one_line_naming_the_option(args: list[str], names: str) -> None:
    """Refused before any setting is read or the store opened (in process: nothing is left configured)."""
    from typer.testing import CliRunner

    from durable_journeys.starter.cli import app

    experiment = "a/b" if names == "NAME" else COUPON_EXPERIMENT
    done = CliRunner().invoke(app, ["experiment", experiment, *args])
    assert done.exit_code == 2 and names in done.output and "Traceback" not in done.output


def test_a_variant_no_customer_took_is_refused_in_one_line(tmp_path: Path) -> None:
    import asyncio

    from durable_journeys.activities.store import Store

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    async def seed() -> None:
        s = Store.from_url(url)
        await s.migrate()
        await s.force_variant(COUPON_EXPERIMENT, "c1", "12h")
        await s.close()

    asyncio.run(seed())
    env = {"JOURNEYS_DATABASE_URL": url}
    for args, names in ((["--winner", "36h"], "--winner"), (["--weights", "12h=1,36h=1"], "--weights")):
        done = journeys("experiment", COUPON_EXPERIMENT, *args, "-r", "x", env=env)
        assert done.returncode == 2 and names in done.stderr and "36h" in done.stderr
        assert "Traceback" not in done.stderr + done.stdout
