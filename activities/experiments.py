"""Experiments: which variant a customer takes, who is in the global holdout, and the split activity.

The assignment is a pure function of (experiment, customer): a customer's hash bucket, cut by the
variants' weights. The split activity records the first assignment of each customer in the store,
where it holds for every later journey and run of that customer, whatever the weights become; an
operator's live setting (``journeys experiment``) can stop an experiment (everyone takes its first
variant) or send its winner to everyone from now on (neither counts in the experiment's arms).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog
from temporalio import activity

from durable_journeys.activities.contracts import ASSIGN_VARIANT, SplitAnswer, SplitRequest

if TYPE_CHECKING:  # the contact policy imports in_holdout: neither the store nor SQLAlchemy loads with it
    from durable_journeys.activities.policy import PolicyConfig
    from durable_journeys.activities.store import Store

log = structlog.get_logger("activities.experiments")


def bucket(salt: str, customer_id: str) -> float:
    """The customer's place in [0, 1) under ``salt``: uniform, stable, independent between salts."""
    digest = hashlib.sha256(f"{salt}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick_variant(experiment: str, customer_id: str, weights: Sequence[tuple[str, int]]) -> str:
    """The variant of ``customer_id`` in ``experiment``, variants in their order with their weights.

    A variant of weight 0 is never picked; the weights need not sum to anything. With every weight
    0, the first variant.
    """
    total = sum(max(w, 0) for _, w in weights)
    if total <= 0:
        return weights[0][0]
    point = bucket(f"experiment:{experiment}", customer_id) * total
    for name, weight in weights:
        point -= max(weight, 0)
        if point < 0:
            return name
    return next(name for name, w in reversed(weights) if w > 0)  # pragma: no cover (float edge)


def in_holdout(customer_id: str, percent: float, forced: Sequence[str] = ()) -> bool:
    """Whether the customer is in the global holdout: ``percent`` of customers, and those ``forced``."""
    return customer_id in forced or (percent > 0 and bucket("holdout", customer_id) * 100 < percent)


class ExperimentActivities:
    """The split step's activity: the customer's variant, recorded once."""

    _store: Store
    policy: PolicyConfig

    @activity.defn(name=ASSIGN_VARIANT)
    async def assign_variant(self, req: SplitRequest) -> SplitAnswer:
        """The customer's variant in ``req.experiment``: kept, assigned now, or set by an operator.

        A customer in the global holdout takes the first variant and counts in no arm: they get
        no ad anyway, and the holdout is their group.
        """
        if in_holdout(req.customer_id, self.policy.holdout_percent, self.policy.holdout_customers):
            return SplitAnswer(variant=req.variants[0].name, how="holdout")
        variant, how = await self._store.assign_variant(
            req.experiment,
            req.customer_id,
            [(v.name, v.weight) for v in req.variants],
            journey=req.journey,
            workflow_id=req.workflow_id,
            at=req.journey_time,
        )
        log.info("experiment.assigned", experiment=req.experiment, variant=variant, how=how, journey=req.journey)
        return SplitAnswer(variant=variant, how=how)
