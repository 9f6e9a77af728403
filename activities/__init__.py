"""Side effects of journeys: sending messages, the customer store, templates, contact policy.

The names below load on first use (PEP 562), so that importing a submodule, the pure
:mod:`durable_journeys.activities.contracts` that workflows import inside the sandbox above all,
does not load the store (SQLAlchemy), the templates (Jinja) or the providers' clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from durable_journeys.providers.lazy import lazy_exports

if TYPE_CHECKING:  # the same names, for type checkers (`X as X`: re-exported)
    from durable_journeys.activities.contracts import (
        CHANNEL_SKIPS as CHANNEL_SKIPS,
    )
    from durable_journeys.activities.contracts import (
        CONFIG_ERROR as CONFIG_ERROR,
    )
    from durable_journeys.activities.contracts import (
        CUSTOMER_SKIPS as CUSTOMER_SKIPS,
    )
    from durable_journeys.activities.contracts import (
        KST as KST,
    )
    from durable_journeys.activities.contracts import (
        OUTCOME_UNKNOWN as OUTCOME_UNKNOWN,
    )
    from durable_journeys.activities.contracts import (
        PROVIDER_UNAVAILABLE as PROVIDER_UNAVAILABLE,
    )
    from durable_journeys.activities.contracts import (
        STORE_UNAVAILABLE as STORE_UNAVAILABLE,
    )
    from durable_journeys.activities.contracts import (
        UNKNOWN_CUSTOMER as UNKNOWN_CUSTOMER,
    )
    from durable_journeys.activities.contracts import (
        ConsentClock as ConsentClock,
    )
    from durable_journeys.activities.contracts import (
        ConsentClocksRequest as ConsentClocksRequest,
    )
    from durable_journeys.activities.contracts import (
        ConsentNotice as ConsentNotice,
    )
    from durable_journeys.activities.contracts import (
        OutcomeStatus as OutcomeStatus,
    )
    from durable_journeys.activities.contracts import (
        SendOutcome as SendOutcome,
    )
    from durable_journeys.activities.contracts import (
        SendRequest as SendRequest,
    )
    from durable_journeys.activities.contracts import (
        idempotency_key as idempotency_key,
    )
    from durable_journeys.activities.customers import (
        CustomerProfile as CustomerProfile,
    )
    from durable_journeys.activities.policy import (
        PolicyConfig as PolicyConfig,
    )
    from durable_journeys.activities.send import (
        SendActivities as SendActivities,
    )
    from durable_journeys.activities.store import (
        MessageRecord as MessageRecord,
    )
    from durable_journeys.activities.store import (
        MessageStatus as MessageStatus,
    )
    from durable_journeys.activities.store import (
        ReceiptRecord as ReceiptRecord,
    )
    from durable_journeys.activities.store import (
        Store as Store,
    )
    from durable_journeys.activities.templates import (
        Template as Template,
    )
    from durable_journeys.activities.templates import (
        TemplateRegistry as TemplateRegistry,
    )
    from durable_journeys.activities.templates import (
        default_templates as default_templates,
    )
    from durable_journeys.activities.templates import (
        profile_variables as profile_variables,
    )
    from durable_journeys.providers import (
        EDGE as EDGE,
    )
    from durable_journeys.providers import (
        Channel as Channel,
    )
    from durable_journeys.providers import (
        DeliveryReceipt as DeliveryReceipt,
    )
    from durable_journeys.providers import (
        ErrorClass as ErrorClass,
    )
    from durable_journeys.providers import (
        OpaqueId as OpaqueId,
    )
    from durable_journeys.providers import (
        PlainText as PlainText,
    )
    from durable_journeys.providers import (
        Purpose as Purpose,
    )
    from durable_journeys.providers import (
        ReceiptMode as ReceiptMode,
    )
    from durable_journeys.providers import (
        ReceiptStatus as ReceiptStatus,
    )
    from durable_journeys.providers import (
        TemplateError as TemplateError,
    )
    from durable_journeys.providers import (
        bounded_json as bounded_json,
    )

_EXPORTS: dict[str, str] = {
    "CHANNEL_SKIPS": "durable_journeys.activities.contracts",
    "CONFIG_ERROR": "durable_journeys.activities.contracts",
    "CUSTOMER_SKIPS": "durable_journeys.activities.contracts",
    "Channel": "durable_journeys.providers",
    "ConsentClock": "durable_journeys.activities.contracts",
    "ConsentClocksRequest": "durable_journeys.activities.contracts",
    "ConsentNotice": "durable_journeys.activities.contracts",
    "CustomerProfile": "durable_journeys.activities.customers",
    "DeliveryReceipt": "durable_journeys.providers",
    "EDGE": "durable_journeys.providers",
    "ErrorClass": "durable_journeys.providers",
    "KST": "durable_journeys.activities.contracts",
    "MessageRecord": "durable_journeys.activities.store",
    "MessageStatus": "durable_journeys.activities.store",
    "OUTCOME_UNKNOWN": "durable_journeys.activities.contracts",
    "OpaqueId": "durable_journeys.providers",
    "OutcomeStatus": "durable_journeys.activities.contracts",
    "PROVIDER_UNAVAILABLE": "durable_journeys.activities.contracts",
    "PlainText": "durable_journeys.providers",
    "PolicyConfig": "durable_journeys.activities.policy",
    "Purpose": "durable_journeys.providers",
    "ReceiptMode": "durable_journeys.providers",
    "ReceiptRecord": "durable_journeys.activities.store",
    "ReceiptStatus": "durable_journeys.providers",
    "STORE_UNAVAILABLE": "durable_journeys.activities.contracts",
    "SendActivities": "durable_journeys.activities.send",
    "SendOutcome": "durable_journeys.activities.contracts",
    "SendRequest": "durable_journeys.activities.contracts",
    "Store": "durable_journeys.activities.store",
    "Template": "durable_journeys.activities.templates",
    "TemplateError": "durable_journeys.providers",
    "TemplateRegistry": "durable_journeys.activities.templates",
    "UNKNOWN_CUSTOMER": "durable_journeys.activities.contracts",
    "bounded_json": "durable_journeys.providers",
    "default_templates": "durable_journeys.activities.templates",
    "idempotency_key": "durable_journeys.activities.contracts",
    "profile_variables": "durable_journeys.activities.templates",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
