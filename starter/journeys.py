"""The ``Journeys`` facade: what an app calls on purchase, shipping and cart events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import CustomerProfile, Store, TemplateError, TemplateRegistry, default_templates, profile_variables
from starter.errors import InvalidInput, JourneyNotFound
from workflows import (
    CUSTOMER_ID,
    JOURNEY,
    JOURNEY_STAGE,
    TASK_QUEUE,
    EventType,
    JourneyEvent,
    Order,
    OrderId,
    PostPurchaseInput,
    PostPurchaseJourney,
    PostPurchaseSettings,
    TimelineEntry,
    order_variables,
    post_purchase_id,
)
from workflows.post_purchase import POST_PURCHASE_STEPS

M = TypeVar("M", bound=BaseModel)
_ORDER_ID = TypeAdapter(OrderId)


def _parse(model: type[M], value: M | Mapping[str, Any], what: str) -> M:
    try:
        return model.model_validate(value.model_dump() if isinstance(value, BaseModel) else value)
    except ValidationError as exc:
        raise InvalidInput.from_validation(what, exc) from None


class Journeys:
    """Start and steer journeys from an app.

    Build it with :meth:`connect`, or from a client and a store you already have.

    Args:
        client: a Temporal client using the pydantic data converter.
        store: the customer store (profiles are upserted here, never put in history).
        task_queue: the journeys' task queue.
        templates: the template registry, to reject missing variables before a start.
        post_purchase: default timings of the post-purchase journey.
    """

    def __init__(
        self,
        client: Client,
        store: Store,
        *,
        task_queue: str = TASK_QUEUE,
        templates: TemplateRegistry | None = None,
        post_purchase: PostPurchaseSettings | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.task_queue = task_queue
        self.templates = templates or default_templates()
        self.post_purchase = post_purchase or PostPurchaseSettings()

    @classmethod
    async def connect(cls, settings: Any = None, **kwargs: Any) -> Journeys:
        """Connect to Temporal and the store as ``settings`` (a ``worker.Settings``) say."""
        from worker import Settings, build_store, connect_client

        settings = settings or Settings()
        store = build_store(settings)
        await store.migrate()
        return cls(await connect_client(settings), store, task_queue=settings.task_queue, **kwargs)

    async def close(self) -> None:
        """Release the store's connections."""
        await self.store.close()

    # post-purchase ----------------------------------------------------------------------------

    async def order_paid(
        self,
        order: Order | Mapping[str, Any],
        customer: CustomerProfile | Mapping[str, Any],
        *,
        settings: PostPurchaseSettings | Mapping[str, Any] | None = None,
    ) -> WorkflowHandle[Any, Any]:
        """Start the order's post-purchase journey; a repeat call starts nothing new.

        Raises:
            InvalidInput: the order, the customer, or the templates' variables are invalid.
        """
        order = _parse(Order, order, "order")
        profile = _parse(CustomerProfile, customer, "customer")
        journey_settings = (
            self.post_purchase if settings is None else _parse(PostPurchaseSettings, settings, "settings")
        )
        if profile.customer_id != order.customer_id:
            raise InvalidInput("order", ["customer_id: does not match the customer's id"])
        variables = {
            **order_variables(order, journey_settings.review_url, journey_settings.sale_url),
            **profile_variables(profile),
        }
        problems = []
        for step, (channels, template) in POST_PURCHASE_STEPS.items():
            try:
                self.templates.validate(template, channels, variables)
            except TemplateError as exc:
                problems.append(f"{step}: {exc}")
        if problems:
            raise InvalidInput("order", problems)

        await self.store.upsert_customer(profile)
        workflow_id = post_purchase_id(order.order_id)
        try:
            return await self.client.start_workflow(
                PostPurchaseJourney.run,
                PostPurchaseInput(order=order, settings=journey_settings),
                id=workflow_id,
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(CUSTOMER_ID, order.customer_id),
                        SearchAttributePair(JOURNEY, PostPurchaseJourney.journey),
                        SearchAttributePair(JOURNEY_STAGE, "paid"),
                    ]
                ),
                static_summary=f"Post-purchase journey of order {order.order_id}",
            )
        except WorkflowAlreadyStartedError:
            # The journey of this order already ran to its end: one journey per order, ever.
            return self.client.get_workflow_handle(workflow_id)

    async def order_shipped(self, order_id: str, **data: Any) -> bool:
        """Tell the order's journey it shipped; False if the journey already ended."""
        return await self._order_event(order_id, EventType.ORDER_SHIPPED, data)

    async def order_delivered(self, order_id: str, **data: Any) -> bool:
        """Tell the order's journey it was delivered; False if the journey already ended."""
        return await self._order_event(order_id, EventType.ORDER_DELIVERED, data)

    async def order_cancelled(self, order_id: str, **data: Any) -> bool:
        """End the order's journey; nothing more is sent. False if it already ended."""
        return await self._order_event(order_id, EventType.ORDER_CANCELLED, data)

    async def order_refunded(self, order_id: str, **data: Any) -> bool:
        """End the order's journey like a cancellation."""
        return await self._order_event(order_id, EventType.ORDER_REFUNDED, data)

    async def _order_event(self, order_id: str, event_type: EventType, data: dict[str, Any]) -> bool:
        try:
            order_id = _ORDER_ID.validate_python(order_id)
        except ValidationError as exc:
            raise InvalidInput.from_validation("order_id", exc) from None
        event = JourneyEvent(type=event_type, event_id=f"{event_type.value}:{order_id}", data=data)
        return await self.signal_event(post_purchase_id(order_id), event)

    # generic ---------------------------------------------------------------------------------

    async def timeline(self, workflow_id: str) -> list[TimelineEntry]:
        """A journey's timeline so far (works on running and finished journeys)."""
        return await self.client.get_workflow_handle(workflow_id).query(PostPurchaseJourney.timeline)

    async def signal_event(self, workflow_id: str, event: JourneyEvent) -> bool:
        """Deliver an event to one journey.

        Returns:
            True if a running journey got it, False if that journey has ended.

        Raises:
            JourneyNotFound: no journey with that id was ever started.
        """
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            await handle.signal(PostPurchaseJourney.on_event, event)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            try:
                await handle.describe()
            except RPCError as exc2:
                if exc2.status is RPCStatusCode.NOT_FOUND:
                    raise JourneyNotFound(f"no journey {workflow_id!r}") from None
                raise
            return False
        return True
