"""What the facade takes from an app, checked before anything reaches Temporal: ids, events, links, actions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
)

from durable_journeys.activities import (
    EDGE,
    Channel,
)
from durable_journeys.activities.contracts import Name64
from durable_journeys.activities.masking import mask
from durable_journeys.activities.store import ExperimentSetting, Store
from durable_journeys.starter.errors import InvalidInput
from durable_journeys.workflows import (
    CUSTOMER_ID,
    JOURNEY,
    JOURNEY_STAGE,
    CustomerId,
    EventType,
    JourneyEvent,
    OperatorAction,
    OrderId,
    ResendAction,
    SkipAction,
    event_data,
)
from durable_journeys.workflows.models import MAX_AMOUNT

M = TypeVar("M", bound=BaseModel)
CareSegment = Literal["first_order", "every_order", "off"]
ORDER_ID_TYPE: TypeAdapter[str] = TypeAdapter(OrderId)
CUSTOMER_ID_TYPE: TypeAdapter[str] = TypeAdapter(CustomerId)
WorkflowId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,199}$", description="a journey's id")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$", description="a journey or stage")]
WORKFLOW_ID_TYPE: TypeAdapter[str] = TypeAdapter(WorkflowId)
NAME_TYPE: TypeAdapter[str] = TypeAdapter(Name)


class Delivery(StrEnum):
    """What became of an event sent to one journey. True only when a running journey got it.

    ``if await journeys.order_shipped(order_id):`` reads as before; compare with the members to
    tell why an event was not delivered.
    """

    DELIVERED = "delivered"  # a running journey got it
    DUPLICATE = "duplicate"  # its event_id reached this running journey before: dropped
    LIMITED = "limited"  # the journey already took as many events of this type as it can use: dropped
    ENDED = "ended"  # the journey has ended: nothing heard it

    def __bool__(self) -> bool:
        return self is Delivery.DELIVERED


def operator_action(
    workflow_id: str,
    operator: str,
    reason: str,
    *,
    step: str | None = None,
    channel: Channel | str | None = None,
    as_event: EventType | str | None = None,
) -> OperatorAction:
    """An operator's action checked before anything is asked of Temporal (a resend's when ``step`` is given).

    Raises:
        InvalidInput: the workflow id, operator, reason, step, channel or event type is malformed.
    """
    validated(WORKFLOW_ID_TYPE, workflow_id, "workflow_id")
    who = {"operator": operator, "reason": reason}
    action: OperatorAction
    if step is not None:
        action = parse(ResendAction, {**who, "step": step, "channel": channel}, "action")
    elif as_event is not None:
        action = parse(SkipAction, {**who, "as_event": as_event}, "action")
    else:
        action = parse(OperatorAction, who, "action")
    # History keeps who and why: a phone number or an e-mail address typed into them is masked.
    return action.model_copy(update={"operator": mask(action.operator)[:64], "reason": mask(action.reason)[:300]})


def visibility_query(
    *, customer_id: str | None = None, journey: str | None = None, stage: str | None = None, running: bool = True
) -> str:
    """The Temporal list filter for these (the same text works in the UI's search box).

    Raises:
        InvalidInput: a value that is no id or name (so nothing can be injected into the query).
    """
    parts = ["Journey IS NOT NULL"] if not (customer_id or journey) else []
    if customer_id is not None:
        parts.append(f'CustomerId = "{validated(CUSTOMER_ID_TYPE, customer_id, "customer_id")}"')
    if journey is not None:
        parts.append(f'Journey = "{validated(NAME_TYPE, journey, "journey")}"')
    if stage is not None:
        parts.append(f'JourneyStage = "{validated(NAME_TYPE, stage, "stage")}"')
    if running:
        parts.append('ExecutionStatus = "Running"')
    return " AND ".join(parts)


V = TypeVar("V")
Amount = Annotated[int, Field(strict=True, gt=0, le=MAX_AMOUNT, description="KRW")]  # an order's bound
AMOUNT_TYPE: TypeAdapter[int] = TypeAdapter(Amount)


def validated(adapter: TypeAdapter[V], value: V, what: str) -> V:
    """``value`` as ``adapter`` reads it; a one-line ``InvalidInput`` naming ``what`` if it cannot."""
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise InvalidInput.from_validation(what, exc) from None


def journey_attributes(customer_id: str, journey: str, stage: str | None) -> TypedSearchAttributes:
    """A journey run's search attributes: ``CustomerId``, ``Journey`` and ``JourneyStage`` (None: not searched)."""
    pairs: list[SearchAttributePair[str]] = [
        SearchAttributePair(CUSTOMER_ID, customer_id),
        SearchAttributePair(JOURNEY, journey),
    ]
    if stage is not None:
        pairs.append(SearchAttributePair(JOURNEY_STAGE, stage))
    return TypedSearchAttributes(pairs)


def parse(model: type[M], value: M | Mapping[str, Any], what: str) -> M:
    """``value`` as ``model`` (edge checks on); a one-line ``InvalidInput`` naming ``what`` if it cannot."""
    try:
        return model.model_validate(value.model_dump() if isinstance(value, BaseModel) else value, context=EDGE)
    except ValidationError as exc:
        raise InvalidInput.from_validation(what, exc) from None


def link_problem(url: str, hosts: Sequence[str]) -> str | None:
    """Why ``url`` may not go out in a message under the shop's name, or None.

    Only ``https`` URLs on one of ``hosts`` (``JOURNEYS_LINK_HOSTS``; an entry ``.shop.example``
    also allows its subdomains), with no user name or password in them.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port  # raises on a port that is no number
    except ValueError:
        return "is not a URL"
    if parts.scheme.lower() != "https":
        return "must be an https URL"
    if not host or parts.username is not None or parts.password is not None or (port is not None and port != 443):
        return "must name a host only (no user, password or port)"
    for allowed in hosts:
        allowed = allowed.lower().rstrip(".")
        if host == allowed.lstrip(".") or (allowed.startswith(".") and host.endswith(allowed)):
            return None
    return (
        f"host {host[:100]} is not one of JOURNEYS_LINK_HOSTS ({', '.join(hosts) or 'none'}); add the shop's host there"
    )


def check_links(what: str, model: BaseModel, hosts: Sequence[str]) -> None:
    """Every URL field of ``model`` (``url``, ``*_url``) passes :func:`link_problem`.

    Raises:
        InvalidInput: one line per bad link, naming the field.
    """
    problems = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if (name == "url" or name.endswith("_url")) and isinstance(value, str):
            problem = link_problem(value.replace("{order_id}", "order"), hosts)
            if problem:
                problems.append(f"{name}: {problem}")
    if problems:
        raise InvalidInput(what, problems)


def checked_event(event: JourneyEvent | Mapping[str, Any]) -> JourneyEvent:
    """An event whose ``data`` fits its type (``workflows.EVENT_DATA``), ready to signal.

    Raises:
        InvalidInput: the event or its data is malformed, too large or too deep.
    """
    parsed = parse(JourneyEvent, event, "event")
    try:
        data = event_data(parsed.type, parsed.data)
    except ValidationError as exc:
        raise InvalidInput.from_validation(f"{parsed.type.value} data", exc) from None
    return parsed.model_copy(update={"data": data})


class ExperimentChange(OperatorAction):
    """An operator's live change of an experiment (``journeys experiment``, ``Journeys.set_experiment``).

    ``running`` with ``weights`` (for customers not yet assigned) or without (the journey's own),
    ``stopped`` (new splits take the first variant), or ``winner`` (every split takes it from now on).
    """

    experiment: Name64
    state: Literal["running", "stopped", "winner"]
    weights: dict[Name64, Annotated[int, Field(ge=0, le=10_000)]] | None = Field(default=None, max_length=20)
    winner: Name64 | None = None

    @classmethod
    def of(
        cls,
        experiment: str,
        *,
        operator: str,
        reason: str,
        weights: Mapping[str, int] | None = None,
        winner: str | None = None,
        stop: bool = False,
    ) -> ExperimentChange:
        """The change that new ``weights``, a ``winner``, ``stop`` or none of them (run again) make.

        Raises:
            ValidationError: a bad name, weight, operator or reason (edge checks on).
        """
        return cls.model_validate(
            {
                "experiment": experiment,
                "state": "winner" if winner is not None else "stopped" if stop else "running",
                "weights": dict(weights) if weights is not None else None,
                "winner": winner,
                "operator": operator,
                "reason": reason,
            },
            context=EDGE,
        )

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentChange:
        if (self.state == "winner") != (self.winner is not None):
            raise ValueError("winner: give the winner exactly when the state is winner")
        if self.weights is not None and (self.state != "running" or not any(self.weights.values())):
            raise ValueError("weights: only to run with, and at least one above 0")
        return self


async def apply_experiment_change(store: Store, change: ExperimentChange) -> ExperimentSetting:
    """Store ``change``; a winner or weights naming a variant no customer took is refused.

    Raises:
        InvalidInput: the change names a variant the experiment's customers never took.
    """
    named = [change.winner] if change.winner else list(change.weights or {})
    seen = await store.experiment_variants(change.experiment)
    unknown = [v for v in named if seen and v not in seen]
    if unknown:
        field = "winner" if change.winner else "weights"
        raise InvalidInput(
            "experiment change",
            [f"{field}: no customer took {', '.join(unknown)} (its variants so far: {', '.join(seen)})"],
        )
    return await store.set_experiment(
        change.experiment,
        state=change.state,
        weights=change.weights,
        winner=change.winner,
        changed_by=change.operator,
        reason=change.reason,
    )
