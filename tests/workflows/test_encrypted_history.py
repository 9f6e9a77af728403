"""With JOURNEYS_CODEC_KEYS set, no item name, amount, address or customer text is plaintext in any history."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.activities.codec import new_key
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.testing import journey_kit
from durable_journeys.workflows import care_id, cart_id, post_purchase_id
from tests import factories

SECRETS = {
    "item": "한정판 가죽 지갑 XJ9",
    "cart item": "특별한 양말 QZ7",
    "name": "비밀스러운고객",
    "tracking": "TRK5550199",
    "carrier": "비밀택배",
    "amount": "1234567",
    "amount, formatted": "1,234,567",
    "cart amount": "7,654,321",
}


@pytest.mark.parametrize("encrypted", [True, False], ids=["with keys", "without keys (the control)"])
async def test_no_history_holds_plaintext_of_orders_carts_events_or_customers(
    env: WorkflowEnvironment, tmp_path: Path, encrypted: bool
) -> None:
    settings = Settings(_env_file=None, codec_keys=new_key("test") if encrypted else "")  # type: ignore[call-arg]
    consented = factories.clock - timedelta(days=30)
    c = factories.customer(
        name=SECRETS["name"],
        app_installed=True,
        push_tokens=["device-token"],
        marketing_consent={Channel.PUSH: consented, Channel.SMS: consented},
    )
    o = factories.order(c, amount=1234567, items=[{"name": SECRETS["item"], "unit_price": 1234567}])
    cart = {"items": [{"name": SECRETS["cart item"], "unit_price": 7654321}]}
    async with journey_kit(env, tmp_path / "enc.db", settings=settings, care_segment="first_order") as kit:
        async with kit.worker():
            await kit.journeys.order_paid(o, c, settings={"review_hours_kst": None})
            await kit.journeys.cart_updated(c.customer_id, cart)
            await kit.advance(timedelta(hours=2))
            await kit.journeys.order_shipped(
                o.order_id, carrier=SECRETS["carrier"], tracking_number=SECRETS["tracking"]
            )
            await kit.advance(timedelta(days=1))
            await kit.journeys.order_delivered(o.order_id)
            await kit.advance(timedelta(days=4))
            sent = await kit.sent()
            timeline = await kit.timeline(post_purchase_id(o.order_id))  # the kit's client decrypts
            plain = env.client  # no codec: what the server, and anyone reading its history, sees
            raw = {}
            for workflow_id in (
                post_purchase_id(o.order_id),
                care_id(c.customer_id, o.order_id),
                cart_id(c.customer_id),
            ):
                history = await plain.get_workflow_handle(workflow_id).fetch_history()
                raw[workflow_id] = b"".join(e.SerializeToString() for e in history.events)
    steps = {m.step for m in sent}
    assert {"payment_complete", "shipping_started", "review_request", "cart_reminder", "care_welcome"} <= steps
    assert any(SECRETS["item"] in (m.body or "") for m in sent)  # the messages carried them ...
    assert any(e.step == "order.shipped" for e in timeline)
    for workflow_id, data in raw.items():  # ... history never did
        assert len(data) > 1000
        leaked = [what for what, text in SECRETS.items() if text.encode() in data]
        if encrypted:
            assert not leaked, (workflow_id, leaked)
            assert b"binary/encrypted" in data
        elif workflow_id.startswith("post-purchase"):  # the control: without keys they are there to find
            assert {"item", "amount", "tracking", "carrier"} <= set(leaked), leaked
