"""The reference journeys, in the order workers register them."""

from __future__ import annotations

from durable_journeys.workflows.cart_abandonment import CartAbandonmentJourney
from durable_journeys.workflows.consent_notice import ConsentNoticeJourney
from durable_journeys.workflows.post_purchase import PostPurchaseJourney
from durable_journeys.workflows.post_purchase_care import PostPurchaseCareJourney
from durable_journeys.workflows.steps import JourneyWorkflow
from durable_journeys.workflows.win_back import WinBackJourney

ALL_WORKFLOWS: list[type[JourneyWorkflow]] = [
    PostPurchaseJourney,
    CartAbandonmentJourney,
    PostPurchaseCareJourney,
    ConsentNoticeJourney,
    WinBackJourney,
]
