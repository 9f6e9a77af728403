"""Register the journeys' search attributes on a namespace (once per cluster)."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from durable_journeys.workflows import SEARCH_ATTRIBUTES


async def register_search_attributes(client: Client) -> list[str]:
    """Add ``CustomerId``, ``Journey`` and ``JourneyStage`` (keyword) where missing.

    Workflows upsert them; on a namespace without them every workflow task would fail.

    Returns:
        The names that were added (empty when all existed).
    """
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        missing = [key.name for key in SEARCH_ATTRIBUTES if key.name not in existing.custom_attributes]
    except RPCError as exc:
        if exc.status is not RPCStatusCode.UNIMPLEMENTED:  # the time-skipping server cannot list
            raise
        missing = [key.name for key in SEARCH_ATTRIBUTES]
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=client.namespace,
                    search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing},
                )
            )
        except RPCError as exc:
            if exc.status is not RPCStatusCode.ALREADY_EXISTS:
                raise
    return missing
