"""Experiments: each customer's variant (the first assignment holds) and operators' live settings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from durable_journeys.activities.store._base import StoreBase, _assignments, _experiments, _now
from durable_journeys.activities.store.records import Assignment, ExperimentSetting

log = structlog.get_logger("activities.store")


class ExperimentStore(StoreBase):
    """Who took which variant of which experiment, and what operators set live."""

    async def assign_variant(
        self,
        experiment: str,
        customer_id: str,
        variants: Sequence[tuple[str, int]],
        *,
        journey: str,
        workflow_id: str,
        at: datetime,
    ) -> tuple[str, str]:
        """The customer's variant and how it was chosen (see ``SplitAnswer``).

        ``variants``: the split's variants in order with their weights. An operator's setting
        naming a variant the split does not have is ignored (and logged): the split goes on as
        if it were not there.
        """
        from durable_journeys.activities.experiments import pick_variant  # pure; no cycle at import

        names = [name for name, _ in variants]
        setting = await self.experiment_setting(experiment)
        if setting is not None and setting.state == "winner":
            if setting.winner in names:
                return str(setting.winner), "winner"
            log.warning("experiment.unknown_winner", experiment=experiment)
        if setting is not None and setting.state == "stopped":
            return names[0], "stopped"
        kept = await self._one(
            select(_assignments.c.variant, _assignments.c.how, _assignments.c.workflow_id).where(
                *_key(experiment, customer_id)
            )
        )
        if kept is not None and kept.variant in names:
            if kept.how == "forced" and not kept.workflow_id:  # forced ahead: the arm starts at this split
                async with self._write() as conn:
                    await conn.execute(
                        update(_assignments)
                        .where(*_key(experiment, customer_id))
                        .values(journey=journey, workflow_id=workflow_id, assigned_at=at)
                    )
                return str(kept.variant), "forced"
            return str(kept.variant), "kept"
        weights = list(variants)
        if setting is not None and setting.weights:
            unknown = set(setting.weights) - set(names)
            if unknown:
                log.warning("experiment.unknown_weights", experiment=experiment, variants=sorted(unknown))
            live = [(name, setting.weights.get(name, 0)) for name in names]
            if any(w > 0 for _, w in live):
                weights = live
        variant = pick_variant(experiment, customer_id, weights)
        values = {
            "experiment": experiment,
            "customer_id": customer_id,
            "variant": variant,
            "how": "assigned",
            "journey": journey,
            "workflow_id": workflow_id,
            "assigned_at": at,
        }
        try:
            async with self._write() as conn:
                if kept is not None:  # a variant this split no longer has: the customer is assigned again
                    await conn.execute(update(_assignments).where(*_key(experiment, customer_id)).values(values))
                else:
                    await conn.execute(insert(_assignments).values(values))
        except IntegrityError:  # another journey of this customer assigned it first: that one holds
            row = await self._one(select(_assignments.c.variant).where(*_key(experiment, customer_id)))
            if row is not None and row.variant in names:
                return str(row.variant), "kept"
        return variant, "assigned"

    async def force_variant(
        self, experiment: str, customer_id: str, variant: str, *, at: datetime | None = None, journey: str = "forced"
    ) -> None:
        """Put the customer in ``variant`` of ``experiment`` (the testing kit, or an operator's QA account)."""
        async with self._write() as conn:
            await conn.execute(delete(_assignments).where(*_key(experiment, customer_id)))
            await conn.execute(
                insert(_assignments).values(
                    experiment=experiment,
                    customer_id=customer_id,
                    variant=variant,
                    how="forced",
                    journey=journey,
                    workflow_id="",
                    assigned_at=at or _now(),
                )
            )

    async def assignments(self, *, since: datetime, until: datetime, experiment: str | None = None) -> list[Assignment]:
        """Assignments made in ``[since, until)``, oldest first."""
        a = _assignments.c
        query = select(_assignments).where(a.assigned_at >= since, a.assigned_at < until)
        if experiment is not None:
            query = query.where(a.experiment == experiment)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(a.assigned_at, a.experiment, a.customer_id))
            return [Assignment.model_validate(r) for r in rows]

    async def experiment_variants(self, experiment: str) -> list[str]:
        """The variants customers took in ``experiment`` so far, by name."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_assignments.c.variant).where(_assignments.c.experiment == experiment).distinct()
            )
            return sorted(str(row.variant) for row in rows)

    async def set_experiment(
        self,
        experiment: str,
        *,
        state: str,
        changed_by: str,
        reason: str,
        weights: dict[str, int] | None = None,
        winner: str | None = None,
    ) -> ExperimentSetting:
        """Set an experiment live: ``running`` (with ``weights``, or the journey's own), ``stopped`` or ``winner``."""
        values = {
            "state": state,
            "weights": weights,
            "winner": winner,
            "changed_by": changed_by,
            "reason": reason,
            "changed_at": _now(),
        }
        try:
            async with self._write() as conn:
                await conn.execute(insert(_experiments).values(experiment=experiment, **values))
        except IntegrityError:
            async with self._write() as conn:
                await conn.execute(update(_experiments).where(_experiments.c.experiment == experiment).values(values))
        setting = await self.experiment_setting(experiment)
        assert setting is not None
        return setting

    async def experiment_setting(self, experiment: str) -> ExperimentSetting | None:
        """An experiment's live setting (None: as the journey declares it)."""
        row = await self._one(select(_experiments).where(_experiments.c.experiment == experiment))
        return None if row is None else ExperimentSetting.model_validate(row)

    async def experiment_settings(self) -> list[ExperimentSetting]:
        """Every experiment an operator has set, by name."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(_experiments).order_by(_experiments.c.experiment))
            return [ExperimentSetting.model_validate(r) for r in rows]


def _key(experiment: str, customer_id: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (_assignments.c.experiment == experiment, _assignments.c.customer_id == customer_id)
