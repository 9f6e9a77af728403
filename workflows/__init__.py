"""Deterministic journey workflows and the durable steps they are made of."""

from workflows.constants import CUSTOMER_ID, JOURNEY, JOURNEY_STAGE, SEARCH_ATTRIBUTES, TASK_QUEUE
from workflows.models import (
    CareInput,
    CareSettings,
    Cart,
    CartInput,
    CartItem,
    CartSettings,
    CartState,
    CustomerId,
    EventType,
    JourneyEvent,
    JourneyResult,
    JourneySettings,
    Order,
    OrderId,
    OrderItem,
    Outcome,
    PostPurchaseInput,
    PostPurchaseSettings,
    StepResult,
    TimelineEntry,
)
from workflows.cart_abandonment import CartAbandonmentJourney, cart_id, cart_variables
from workflows.post_purchase import KAKAO_THEN_SMS, PostPurchaseJourney, order_variables, post_purchase_id
from workflows.post_purchase_care import PostPurchaseCareJourney, care_id
from workflows.steps import JourneyExit, JourneyWorkflow

ALL_WORKFLOWS = [PostPurchaseJourney, CartAbandonmentJourney, PostPurchaseCareJourney]

__all__ = [
    "CareInput",
    "CareSettings",
    "Cart",
    "CartAbandonmentJourney",
    "CartInput",
    "CartItem",
    "CartSettings",
    "CartState",
    "CustomerId",
    "PostPurchaseCareJourney",
    "care_id",
    "cart_id",
    "cart_variables",
    "ALL_WORKFLOWS",
    "CUSTOMER_ID",
    "JOURNEY",
    "JOURNEY_STAGE",
    "KAKAO_THEN_SMS",
    "SEARCH_ATTRIBUTES",
    "TASK_QUEUE",
    "EventType",
    "JourneyEvent",
    "JourneyExit",
    "JourneyResult",
    "JourneySettings",
    "JourneyWorkflow",
    "Order",
    "OrderId",
    "OrderItem",
    "Outcome",
    "PostPurchaseInput",
    "PostPurchaseJourney",
    "PostPurchaseSettings",
    "StepResult",
    "TimelineEntry",
    "order_variables",
    "post_purchase_id",
]
