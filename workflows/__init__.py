"""Deterministic journey workflows and the durable steps they are made of.

Names load on first use (PEP 562): a journey's run in the workflow sandbox, which imports its
module afresh for every run, imports that journey and the engine, not every journey of the pack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from durable_journeys.providers.lazy import lazy_exports

if TYPE_CHECKING:
    from durable_journeys.workflows.cart_abandonment import CartAbandonmentJourney as CartAbandonmentJourney
    from durable_journeys.workflows.cart_abandonment import cart_id as cart_id
    from durable_journeys.workflows.cart_abandonment import cart_variables as cart_variables
    from durable_journeys.workflows.catalog import ALL_WORKFLOWS as ALL_WORKFLOWS
    from durable_journeys.workflows.consent_notice import ConsentNoticeJourney as ConsentNoticeJourney
    from durable_journeys.workflows.consent_notice import consent_notice_id as consent_notice_id
    from durable_journeys.workflows.constants import CUSTOMER_ID as CUSTOMER_ID
    from durable_journeys.workflows.constants import ENGINE as ENGINE
    from durable_journeys.workflows.constants import ENGINE_MEMO as ENGINE_MEMO
    from durable_journeys.workflows.constants import JOURNEY as JOURNEY
    from durable_journeys.workflows.constants import JOURNEY_STAGE as JOURNEY_STAGE
    from durable_journeys.workflows.constants import SEARCH_ATTRIBUTES as SEARCH_ATTRIBUTES
    from durable_journeys.workflows.constants import TASK_QUEUE as TASK_QUEUE
    from durable_journeys.workflows.models import EVENT_DATA as EVENT_DATA
    from durable_journeys.workflows.models import CareInput as CareInput
    from durable_journeys.workflows.models import CareSettings as CareSettings
    from durable_journeys.workflows.models import Cart as Cart
    from durable_journeys.workflows.models import CartInput as CartInput
    from durable_journeys.workflows.models import CartItem as CartItem
    from durable_journeys.workflows.models import CartSettings as CartSettings
    from durable_journeys.workflows.models import CartState as CartState
    from durable_journeys.workflows.models import ConsentNoticeInput as ConsentNoticeInput
    from durable_journeys.workflows.models import ConsentNoticeSettings as ConsentNoticeSettings
    from durable_journeys.workflows.models import CustomerId as CustomerId
    from durable_journeys.workflows.models import EventType as EventType
    from durable_journeys.workflows.models import JourneyEvent as JourneyEvent
    from durable_journeys.workflows.models import JourneyResult as JourneyResult
    from durable_journeys.workflows.models import JourneySettings as JourneySettings
    from durable_journeys.workflows.models import JourneyState as JourneyState
    from durable_journeys.workflows.models import OperatorAction as OperatorAction
    from durable_journeys.workflows.models import Order as Order
    from durable_journeys.workflows.models import OrderId as OrderId
    from durable_journeys.workflows.models import OrderItem as OrderItem
    from durable_journeys.workflows.models import Outcome as Outcome
    from durable_journeys.workflows.models import PostPurchaseInput as PostPurchaseInput
    from durable_journeys.workflows.models import PostPurchaseSettings as PostPurchaseSettings
    from durable_journeys.workflows.models import ResendAction as ResendAction
    from durable_journeys.workflows.models import SentStep as SentStep
    from durable_journeys.workflows.models import SkipAction as SkipAction
    from durable_journeys.workflows.models import StepResult as StepResult
    from durable_journeys.workflows.models import TimelineEntry as TimelineEntry
    from durable_journeys.workflows.models import WaitInfo as WaitInfo
    from durable_journeys.workflows.models import WinBackInput as WinBackInput
    from durable_journeys.workflows.models import WinBackSettings as WinBackSettings
    from durable_journeys.workflows.models import event_data as event_data
    from durable_journeys.workflows.post_purchase import KAKAO_THEN_SMS as KAKAO_THEN_SMS
    from durable_journeys.workflows.post_purchase import PostPurchaseJourney as PostPurchaseJourney
    from durable_journeys.workflows.post_purchase import order_variables as order_variables
    from durable_journeys.workflows.post_purchase import post_purchase_id as post_purchase_id
    from durable_journeys.workflows.post_purchase_care import PostPurchaseCareJourney as PostPurchaseCareJourney
    from durable_journeys.workflows.post_purchase_care import care_id as care_id
    from durable_journeys.workflows.steps import JourneyExit as JourneyExit
    from durable_journeys.workflows.steps import JourneyWorkflow as JourneyWorkflow
    from durable_journeys.workflows.steps import event_signal as event_signal
    from durable_journeys.workflows.steps import receipt_signal as receipt_signal
    from durable_journeys.workflows.win_back import WinBackJourney as WinBackJourney
    from durable_journeys.workflows.win_back import win_back_id as win_back_id

_EXPORTS = {
    "CartAbandonmentJourney": "durable_journeys.workflows.cart_abandonment",
    "cart_id": "durable_journeys.workflows.cart_abandonment",
    "cart_variables": "durable_journeys.workflows.cart_abandonment",
    "ConsentNoticeJourney": "durable_journeys.workflows.consent_notice",
    "consent_notice_id": "durable_journeys.workflows.consent_notice",
    "CUSTOMER_ID": "durable_journeys.workflows.constants",
    "ENGINE": "durable_journeys.workflows.constants",
    "ENGINE_MEMO": "durable_journeys.workflows.constants",
    "JOURNEY": "durable_journeys.workflows.constants",
    "JOURNEY_STAGE": "durable_journeys.workflows.constants",
    "SEARCH_ATTRIBUTES": "durable_journeys.workflows.constants",
    "TASK_QUEUE": "durable_journeys.workflows.constants",
    "EVENT_DATA": "durable_journeys.workflows.models",
    "CareInput": "durable_journeys.workflows.models",
    "CareSettings": "durable_journeys.workflows.models",
    "Cart": "durable_journeys.workflows.models",
    "CartInput": "durable_journeys.workflows.models",
    "CartItem": "durable_journeys.workflows.models",
    "CartSettings": "durable_journeys.workflows.models",
    "CartState": "durable_journeys.workflows.models",
    "ConsentNoticeInput": "durable_journeys.workflows.models",
    "ConsentNoticeSettings": "durable_journeys.workflows.models",
    "CustomerId": "durable_journeys.workflows.models",
    "EventType": "durable_journeys.workflows.models",
    "JourneyEvent": "durable_journeys.workflows.models",
    "JourneyResult": "durable_journeys.workflows.models",
    "JourneySettings": "durable_journeys.workflows.models",
    "JourneyState": "durable_journeys.workflows.models",
    "OperatorAction": "durable_journeys.workflows.models",
    "Order": "durable_journeys.workflows.models",
    "OrderId": "durable_journeys.workflows.models",
    "OrderItem": "durable_journeys.workflows.models",
    "Outcome": "durable_journeys.workflows.models",
    "PostPurchaseInput": "durable_journeys.workflows.models",
    "PostPurchaseSettings": "durable_journeys.workflows.models",
    "ResendAction": "durable_journeys.workflows.models",
    "SentStep": "durable_journeys.workflows.models",
    "SkipAction": "durable_journeys.workflows.models",
    "StepResult": "durable_journeys.workflows.models",
    "TimelineEntry": "durable_journeys.workflows.models",
    "WaitInfo": "durable_journeys.workflows.models",
    "WinBackInput": "durable_journeys.workflows.models",
    "WinBackSettings": "durable_journeys.workflows.models",
    "event_data": "durable_journeys.workflows.models",
    "KAKAO_THEN_SMS": "durable_journeys.workflows.post_purchase",
    "PostPurchaseJourney": "durable_journeys.workflows.post_purchase",
    "order_variables": "durable_journeys.workflows.post_purchase",
    "post_purchase_id": "durable_journeys.workflows.post_purchase",
    "PostPurchaseCareJourney": "durable_journeys.workflows.post_purchase_care",
    "care_id": "durable_journeys.workflows.post_purchase_care",
    "JourneyExit": "durable_journeys.workflows.steps",
    "JourneyWorkflow": "durable_journeys.workflows.steps",
    "event_signal": "durable_journeys.workflows.steps",
    "receipt_signal": "durable_journeys.workflows.steps",
    "WinBackJourney": "durable_journeys.workflows.win_back",
    "win_back_id": "durable_journeys.workflows.win_back",
    "ALL_WORKFLOWS": "durable_journeys.workflows.catalog",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
