"""Experiments: the durable split step (which variant this customer takes) and what each send carries of it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from durable_journeys.activities.contracts import ASSIGN_VARIANT, SplitAnswer, SplitRequest, Variant
from durable_journeys.workflows.engine.sending import JourneySending
from durable_journeys.workflows.models import Outcome

SPLIT_TIMEOUT = timedelta(seconds=30)
SPLIT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


class JourneySplits(JourneySending):
    """``split``: the customer's variant of an experiment, taken once per journey and recorded."""

    async def split(
        self,
        experiment: str,
        variants: Sequence[str] | Mapping[str, int],
        weights: Sequence[int] | None = None,
    ) -> str:
        """The customer's variant of ``experiment``: one of ``variants`` (weights: equal unless given).

        The assignment is a pure function of the experiment and the customer, and the first one
        holds (the store keeps it), so a customer takes the same variant in every journey and
        run of the experiment; an operator's live setting can stop the experiment (everyone
        takes the first variant) or send a winner to everyone from now on. A journey keeps the
        variant it took (replays, continue-as-new). The split is in the timeline, and every
        later send of the journey carries it to the message log, where the report counts each
        variant; a variant named ``control`` is, by convention, the arm that sends nothing.

        ``variants`` may be a mapping of names to weights instead of ``weights``.

        Raises:
            ValueError: a name is not 1-64 letters, digits, ``_.-``, a name is given twice, or the
                weights do not match the variants (a bug in the journey: its task fails until fixed).
        """
        if isinstance(variants, Mapping):
            arms = [Variant(name=name, weight=weight) for name, weight in variants.items()]
        else:
            given = list(weights) if weights is not None else [1] * len(variants)
            if len(given) != len(variants):
                raise ValueError(f"split {experiment}: {len(variants)} variants but {len(given)} weights")
            arms = [Variant(name=name, weight=w) for name, w in zip(variants, given, strict=True)]
        taken = self.state.variants.get(experiment)
        if taken is not None:
            self.state.variants[experiment] = self.state.variants.pop(experiment)  # the latest split: last
            return taken
        request = SplitRequest(
            experiment=experiment,
            variants=arms,
            customer_id=self.state.customer_id,
            journey=self.journey,
            workflow_id=workflow.info().workflow_id,
            journey_time=workflow.now(),
        )
        answer: SplitAnswer = await workflow.execute_activity(
            ASSIGN_VARIANT,
            request,
            result_type=SplitAnswer,
            start_to_close_timeout=SPLIT_TIMEOUT,
            retry_policy=SPLIT_RETRY,
            summary=f"split {experiment}",
        )
        self.state.variants[experiment] = answer.variant
        self._record(f"split:{experiment}", Outcome.SPLIT, None, f"{answer.variant} ({answer.how})")
        return answer.variant

    def _experiment(self) -> tuple[str | None, str | None]:
        """The journey's latest split and its variant (what its sends carry to the message log)."""
        if not self.state.variants:
            return None, None
        experiment = next(reversed(self.state.variants))
        return experiment, self.state.variants[experiment]
