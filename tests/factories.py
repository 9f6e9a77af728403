"""Sample orders and customers for tests (recipients follow the sandbox's magic numbers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from activities import Channel, CustomerProfile
from workflows import Order, OrderItem

CONSENTED = datetime(2026, 1, 1, tzinfo=UTC)


def customer(phone: str = "010-1234-5678", **overrides: Any) -> CustomerProfile:
    data: dict[str, Any] = {
        "customer_id": f"c-{uuid.uuid4().hex[:10]}",
        "name": "김하늘",
        "phone": phone,
        "email": "haneul@example.com",
        "marketing_consent": {Channel.SMS: CONSENTED},
        "night_consent_at": CONSENTED,
    }
    data.update(overrides)
    return CustomerProfile.model_validate(data)


def order(for_customer: CustomerProfile, **overrides: Any) -> Order:
    data: dict[str, Any] = {
        "order_id": f"o-{uuid.uuid4().hex[:10]}",
        "customer_id": for_customer.customer_id,
        "amount": 39000,
        "items": [OrderItem(name="무선 이어폰", unit_price=39000)],
    }
    data.update(overrides)
    return Order.model_validate(data)
