"""The report's experiments: per experiment and variant, who converted, what they bought and what their messages cost.

An arm of an experiment is the customers the split assigned to that variant in the report's
period (a forced assignment counts; a winner sent to everyone, or a stopped experiment's first
variant, does not). The global holdout is one more experiment, ``holdout``: its arm ``holdout``
is the customers an ad was held back from in the period, its arm ``exposed`` the customers who
got an ad. A customer converts when they pay an order within the attribution window after they
entered the arm (their assignment; for the holdout, their first held or sent ad); revenue is
what those orders paid. An arm's messages are the ones its customers' journeys sent carrying the
experiment, at or after the assignment; their cost is the price of each message sent.

Which arm sells is a test of the conversions: Fisher's exact test for two arms when any expected
count is under 5, else Pearson's chi-squared (Yates-corrected for two arms), both from SciPy.
The verdict names the best-converting arm against the control (the arm named ``control``, or the
holdout) or else the runner-up; significant at 95 % when p < 0.05; otherwise about how many more
customers per arm would show the observed difference (two-sided 5 %, power 80 %).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from durable_journeys.activities.store import Assignment, MessageRecord, PaidOrder, SkipRecord

HOLDOUT = "holdout"
EXPOSED = "exposed"
CONTROL = "control"
ALPHA = 0.05
POWER = 0.8


class Arm(BaseModel):
    """One variant of one experiment (or the holdout's two groups)."""

    variant: str
    customers: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int = Field(default=0, description="customers with an order within the attribution window")
    revenue: int = Field(default=0, description="what those orders paid, KRW")
    cost: float = Field(default=0.0, description="the price of the arm's messages, KRW")

    @property
    def conversion(self) -> float | None:
        """Converted per customer (None: no customer)."""
        return self.converted / self.customers if self.customers else None


class ExperimentResult(BaseModel):
    """One experiment's arms, its test and its verdict in plain words."""

    experiment: str
    arms: list[Arm]
    test: str | None = Field(default=None, description="chi-squared or fisher-exact; None: nothing to test yet")
    p_value: float | None = None
    significant: bool = False
    leader: str | None = None
    against: str | None = None
    more_per_arm: int | None = Field(default=None, description="about this many more customers per arm to tell")
    verdict: str


def price_of(message: MessageRecord, prices: Mapping[str, float]) -> float:
    """What one sent message cost: its type's price (``sms``/``lms`` on SMS), else its channel's, else 0."""
    if message.final_channel and message.receipt_channel and message.receipt_channel != message.channel:
        return prices.get(message.receipt_channel, 0.0)  # a gateway chain delivered on a later channel
    kind = message.message_type or message.channel
    return prices.get(kind, prices.get(message.channel, 0.0))


def delivered(m: MessageRecord) -> bool:
    """Whether a sent message counts as delivered: a receipt said so, or its channel has no receipts."""
    return m.receipt_status == "delivered" or (m.receipt_mode == "none" and m.receipt_status is None)


def sent_at(m: MessageRecord) -> datetime:
    """When a message was sent, in journey time (the log's own time for a row without one)."""
    return m.journey_time or m.created_at


class _ArmBuilder:
    """Customers with the moment they entered the arm, and the arm's messages."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.entered: dict[str, datetime] = {}
        self.messages: list[MessageRecord] = []

    def enter(self, customer_id: str, at: datetime) -> None:
        if customer_id not in self.entered or at < self.entered[customer_id]:
            self.entered[customer_id] = at

    def build(
        self,
        marks: Mapping[str, set[str]],
        orders: Mapping[str, Sequence[PaidOrder]],
        attribution: timedelta,
        prices: Mapping[str, float],
    ) -> Arm:
        arm = Arm(variant=self.variant, customers=len(self.entered))
        for m in self.messages:
            arm.sent += 1
            arm.delivered += delivered(m)
            arm.opened += m.idempotency_key in marks.get("opened", set())
            arm.clicked += m.idempotency_key in marks.get("clicked", set())
            arm.cost += price_of(m, prices)
        arm.cost = round(arm.cost, 2)
        for customer, since in self.entered.items():
            paid = [o for o in orders.get(customer, ()) if since < o.paid_at <= since + attribution]
            if paid:
                arm.converted += 1
                arm.revenue += sum(o.amount for o in paid)
        return arm


def experiment_results(
    assignments: Sequence[Assignment],
    sent: Sequence[MessageRecord],
    skips: Sequence[SkipRecord],
    orders: Sequence[PaidOrder],
    marks: Mapping[str, set[str]],
    *,
    attribution: timedelta,
    prices: Mapping[str, float],
) -> list[ExperimentResult]:
    """Every experiment with an assignment in the period, then the holdout if an ad was held back."""
    by_customer: dict[str, list[PaidOrder]] = defaultdict(list)
    for order in orders:
        by_customer[order.customer_id].append(order)
    experiments: dict[str, dict[str, _ArmBuilder]] = {}
    for a in assignments:
        arms = experiments.setdefault(a.experiment, {})
        arms.setdefault(a.variant, _ArmBuilder(a.variant)).enter(a.customer_id, a.assigned_at)
    for m in sent:
        if m.experiment in experiments and m.variant in experiments[m.experiment]:
            arm = experiments[m.experiment][m.variant]
            entered = arm.entered.get(m.customer_id)
            if entered is not None and sent_at(m) >= entered:
                arm.messages.append(m)
    results = [
        judge(name, [b.build(marks, by_customer, attribution, prices) for b in _ordered(arms.values())])
        for name, arms in experiments.items()
    ]
    held = [s for s in skips if s.reason == HOLDOUT and s.status == "skipped"]
    if held:
        holdout, exposed = _ArmBuilder(HOLDOUT), _ArmBuilder(EXPOSED)
        for s in held:
            holdout.enter(s.customer_id, s.journey_time)
        for m in sent:
            if m.purpose == "advertising" and m.customer_id not in holdout.entered:
                exposed.enter(m.customer_id, sent_at(m))
                exposed.messages.append(m)
        results.append(judge(HOLDOUT, [b.build(marks, by_customer, attribution, prices) for b in (exposed, holdout)]))
    return results


def _ordered(arms: Iterable[_ArmBuilder]) -> list[_ArmBuilder]:
    """Arms by name, the control first."""
    return sorted(arms, key=lambda a: (a.variant != CONTROL, a.variant))


def judge(experiment: str, arms: list[Arm]) -> ExperimentResult:
    """The experiment's test and verdict over its arms."""
    result = ExperimentResult(experiment=experiment, arms=arms, verdict="")
    counted = [a for a in arms if a.customers]
    if len(counted) < 2:
        result.verdict = "not yet significant: fewer than two arms have customers"
        return result
    ranked = sorted(counted, key=lambda a: (-(a.conversion or 0.0), a.variant))
    leader = ranked[0]
    baseline = next((a for a in counted if a.variant in (CONTROL, HOLDOUT) and a is not leader), None)
    against = baseline or ranked[1]
    result.leader, result.against = leader.variant, against.variant
    converted = sum(a.converted for a in counted)
    if converted == 0:
        result.verdict = "not yet significant: no conversions yet"
        return result
    if converted == sum(a.customers for a in counted):
        result.verdict = "not yet significant: every customer converted"
        return result
    result.test, result.p_value = _test(counted)
    p1, p2 = leader.conversion or 0.0, against.conversion or 0.0
    if result.p_value < ALPHA and p1 > p2:
        result.significant = True
        times = f"{p1 / p2:.1f}x {against.variant}" if p2 else f"{100 * p1:.1f}% against 0% for {against.variant}"
        result.verdict = f"{leader.variant} converts {times}, significant at 95 % ({_p(result)})"
        return result
    if p1 == p2:
        result.verdict = (
            f"not yet significant: no difference between {leader.variant} and {against.variant} yet ({_p(result)})"
        )
        return result
    needed = needed_per_arm(p1, p2)
    result.more_per_arm = max(needed - min(leader.customers, against.customers), 1)
    result.verdict = (
        f"not yet significant: about {result.more_per_arm} more customers per arm "
        f"({leader.variant} {100 * p1:.1f}% against {against.variant} {100 * p2:.1f}%; {_p(result)})"
    )
    return result


def _p(result: ExperimentResult) -> str:
    return f"{result.test}, p = {result.p_value:.3g}"


def _test(arms: Sequence[Arm]) -> tuple[str, float]:
    """Fisher's exact test for 2x2 tables with an expected count under 5, else chi-squared."""
    from scipy.stats import chi2_contingency, fisher_exact  # loaded only when a report is built

    table = [[a.converted, a.customers - a.converted] for a in arms]
    total = sum(a.customers for a in arms)
    converted = sum(a.converted for a in arms)
    smallest = min(a.customers * min(converted, total - converted) / total for a in arms)
    if len(arms) == 2 and smallest < 5:
        return "fisher-exact", float(fisher_exact(table).pvalue)
    return "chi-squared", float(chi2_contingency(table).pvalue)


def needed_per_arm(p1: float, p2: float, *, alpha: float = ALPHA, power: float = POWER) -> int:
    """Customers per arm for a two-sided two-proportion test to tell ``p1`` from ``p2`` (normal approximation)."""
    from scipy.stats import norm

    z_a, z_b = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    mean = (p1 + p2) / 2
    spread = z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return int(math.ceil(spread**2 / (p1 - p2) ** 2))
