"""Side effects of journeys: sending messages, the customer store, templates, contact policy.

Workflows import the types and activity references below; nothing here is deterministic.
"""

from durable_journeys.activities.customers import CustomerProfile
from durable_journeys.activities.policy import CHANNEL_SKIPS, CUSTOMER_SKIPS, KST, PolicyConfig
from durable_journeys.activities.send import (
    CONFIG_ERROR,
    OUTCOME_UNKNOWN,
    PROVIDER_UNAVAILABLE,
    STORE_UNAVAILABLE,
    UNKNOWN_CUSTOMER,
    ConsentClock,
    ConsentClocksRequest,
    ConsentNotice,
    OutcomeStatus,
    SendActivities,
    SendOutcome,
    SendRequest,
    idempotency_key,
)
from durable_journeys.activities.store import MessageRecord, MessageStatus, ReceiptRecord, Store
from durable_journeys.activities.templates import Template, TemplateRegistry, default_templates, profile_variables
from durable_journeys.providers import (
    EDGE,
    Channel,
    DeliveryReceipt,
    ErrorClass,
    OpaqueId,
    PlainText,
    Purpose,
    ReceiptMode,
    ReceiptStatus,
    TemplateError,
    bounded_json,
)

__all__ = [
    "CHANNEL_SKIPS",
    "CUSTOMER_SKIPS",
    "CONFIG_ERROR",
    "EDGE",
    "KST",
    "OUTCOME_UNKNOWN",
    "UNKNOWN_CUSTOMER",
    "PROVIDER_UNAVAILABLE",
    "STORE_UNAVAILABLE",
    "Channel",
    "ConsentClock",
    "ConsentClocksRequest",
    "ConsentNotice",
    "CustomerProfile",
    "DeliveryReceipt",
    "ErrorClass",
    "MessageRecord",
    "MessageStatus",
    "OpaqueId",
    "OutcomeStatus",
    "PlainText",
    "PolicyConfig",
    "Purpose",
    "ReceiptMode",
    "ReceiptRecord",
    "ReceiptStatus",
    "SendActivities",
    "SendOutcome",
    "SendRequest",
    "Store",
    "Template",
    "TemplateError",
    "TemplateRegistry",
    "bounded_json",
    "default_templates",
    "idempotency_key",
    "profile_variables",
]
