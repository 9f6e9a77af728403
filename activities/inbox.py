"""The in-app inbox as a channel provider: messages land in our own table, the app reads them over HTTP.

It lives with the store (not in ``providers/``) because it writes our database. A template's
in-app ``provider_template_codes`` entry chooses how the app shows it: ``message`` (inbox) or
``banner`` (shown at the next app open).
"""

from __future__ import annotations

from durable_journeys.activities.store import Store
from durable_journeys.providers import (
    DeliveryReceipt,
    InvalidReceipt,
    OutboundMessage,
    ReceiptMode,
    SendResult,
    SendStatus,
    WebhookError,
)

INBOX_KINDS = frozenset({"message", "banner"})


class InboxProvider:
    """Delivers ``in_app`` messages into the ``in_app_inbox`` table, once per idempotency key."""

    name = "inbox"

    def __init__(self, store: Store) -> None:
        self._store = store

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Add the message to the customer's inbox (``msg.to`` is the customer id)."""
        kind = msg.template_code if msg.template_code in INBOX_KINDS else "message"
        message_id = await self._store.add_inbox_message(
            idempotency_key=msg.idempotency_key, customer_id=msg.to, kind=kind, title=msg.subject, body=msg.body
        )
        return SendResult(status=SendStatus.ACCEPTED, provider_message_id=str(message_id), receipt=ReceiptMode.NONE)

    async def lookup(self, idempotency_key: str) -> SendResult | None:
        """Sends are idempotent by key already; nothing to reconcile."""
        return None

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> list[DeliveryReceipt | InvalidReceipt]:
        """The inbox has no webhooks."""
        raise WebhookError("the in-app inbox takes no webhooks")
