"""Sample orders and customers for tests (recipients follow the sandbox's magic numbers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from durable_journeys.activities import Channel, CustomerProfile
from durable_journeys.workflows import Order, OrderItem

# Journey time "now" (the time-skipping server's clock); conftest sets it before each test.
clock = datetime.now(UTC)


def customer(phone: str = "010-1234-5678", **overrides: Any) -> CustomerProfile:
    data: dict[str, Any] = {
        "customer_id": f"c-{uuid.uuid4().hex[:10]}",
        "name": "김하늘",
        "phone": phone,
        "email": "haneul@example.com",
        "marketing_consent": {Channel.SMS: clock - timedelta(days=30)},
        "night_consent_at": clock - timedelta(days=30),
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
