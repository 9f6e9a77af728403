"""Side effects of journeys: sending messages, the customer store, templates, contact policy.

Workflows import the types and activity references below; nothing here is deterministic.
"""

from activities.customers import CustomerProfile
from activities.policy import CHANNEL_SKIPS, CUSTOMER_SKIPS, KST, PolicyConfig
from activities.send import (
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
from activities.store import MessageRecord, MessageStatus, ReceiptRecord, Store
from activities.templates import Template, TemplateRegistry, default_templates, profile_variables
from providers import (
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
