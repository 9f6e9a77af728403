"""Record one history per journey scenario into ``tests/histories/<name>-<version>.json``.

Run ``python -m tests.histories.regenerate 1.4`` after changing a journey's command sequence (a
change behind ``workflow.patched()``), *keeping* the files of earlier versions:
``tests/test_replay.py`` replays every file against today's code, so a change that would break
journeys already running fails CI. See README, "Changing a live journey safely".
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel, CustomerProfile
from durable_journeys.providers.sandbox import ReceiptTiming
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.stack import Stack, embedded_stack
from durable_journeys.starter.testing import start_test_environment
from durable_journeys.workflows import CartSettings, care_id, consent_notice_id
from tests import factories

HERE = Path(__file__).parent
Scenario = Callable[[WorkflowEnvironment, Stack], Awaitable[WorkflowHandle]]


def _customer(phone: str = "010-1234-5678", *, app: bool = False) -> CustomerProfile:
    consented = datetime(2026, 1, 1, tzinfo=UTC)
    return factories.customer(
        phone,
        app_installed=app,
        push_tokens=["tok"] if app else [],
        night_consent_at=consented,
        marketing_consent=dict.fromkeys((Channel.SMS, Channel.PUSH, Channel.BRAND_MESSAGE), consented),
    )


async def _ship_and_deliver(
    env: WorkflowEnvironment,
    stack: Stack,
    order_id: str,
    handle: WorkflowHandle,
    *,
    shipped_after: timedelta = timedelta(hours=20),
    delivered_after: timedelta = timedelta(days=1),
) -> WorkflowHandle:
    """Shipped 20 hours after payment, delivered a day later (by default); the journey runs to its end."""
    await env.sleep(shipped_after)
    await stack.journeys.order_shipped(order_id)
    await env.sleep(delivered_after)
    await stack.journeys.order_delivered(order_id)
    await handle.result()
    return handle


async def post_purchase(env: WorkflowEnvironment, stack: Stack, phone: str = "010-1234-5678") -> WorkflowHandle:
    c = _customer(phone)
    o = factories.order(c)
    handle = await stack.journeys.order_paid(o, c)
    return await _ship_and_deliver(env, stack, o.order_id, handle)


async def post_purchase_fallback(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    return await post_purchase(env, stack, "010-0000-0002")


async def post_purchase_gateway(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    """Gateway fallback on every step; AlimTalk never reports (one call, no receipt wait).

    Started through the facade with ``fallback`` in its settings (from 1.1: the engine generation
    in the memo; the 1.0 file was started with the raw input and has none).
    """
    from durable_journeys.workflows import PostPurchaseSettings

    c = _customer("010-0000-0002")
    o = factories.order(c)
    settings = PostPurchaseSettings(review_hours_kst=None).model_dump(mode="json") | {"fallback": {"*": "gateway"}}
    handle = await stack.journeys.order_paid(o, c, settings=settings)
    return await _ship_and_deliver(env, stack, o.order_id, handle)


async def post_purchase_outage(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    """The provider is down for two hours when the order is paid (the step waits, then sends)."""
    key = {"Authorization": f"Bearer {stack.settings.sandbox_api_key.get_secret_value()}"}
    c = _customer()
    o = factories.order(c)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.sandbox_app), base_url="http://s") as http:
        (await http.post("/v1/control/outage", json={"seconds": 3600}, headers=key)).raise_for_status()
        handle = await stack.journeys.order_paid(o, c)
        await env.sleep(timedelta(hours=2))
        (await http.post("/v1/control/outage", json={"seconds": 0}, headers=key)).raise_for_status()
    await env.sleep(timedelta(hours=1))
    await stack.journeys.order_shipped(o.order_id)
    await env.sleep(timedelta(days=1))
    await stack.journeys.order_delivered(o.order_id)
    await handle.result()
    return handle


async def post_purchase_unknown_customer(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    """The app writes the customer to a database the worker does not read (stage unknown_customer)."""
    from durable_journeys.activities import Store
    from durable_journeys.starter import Journeys

    with tempfile.TemporaryDirectory() as tmp:
        other = Store.from_url(f"sqlite+aiosqlite:///{Path(tmp) / 'other.db'}")
        await other.migrate()
        try:
            app = Journeys(stack.journeys.client, other, task_queue=stack.journeys.task_queue, care_segment="off")
            c = _customer()
            o = factories.order(c)
            handle = await app.order_paid(o, c)
            await env.sleep(timedelta(hours=1))
            await stack.store.upsert_customer(c)
            await stack.journeys.order_shipped(o.order_id)
            await env.sleep(timedelta(days=1))
            await stack.journeys.order_delivered(o.order_id)
            await handle.result()
        finally:
            await other.close()
    return handle


async def _start_cart(stack: Stack) -> tuple[CustomerProfile, WorkflowHandle]:
    """A shopper with the app puts socks in the cart: the cart journey starts."""
    c = _customer(app=True)
    handle = await stack.journeys.cart_updated(
        c.customer_id, {"items": [{"name": "양말", "unit_price": 5000}]}, customer=c
    )
    return c, handle


async def cart(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    c, handle = await _start_cart(stack)
    await env.sleep(timedelta(minutes=30))
    await stack.journeys.cart_updated(c.customer_id, {"items": [{"name": "모자", "unit_price": 9000}]})
    await handle.result()
    return handle


async def care(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    c = _customer(app=True)
    o = factories.order(c)
    await stack.journeys.order_paid(o, c)
    await env.sleep(timedelta(days=2))
    await stack.journeys.emit(c.customer_id, {"type": "app.opened"})
    await env.sleep(timedelta(days=13))
    handle = stack.journeys.client.get_workflow_handle(care_id(c.customer_id, o.order_id))
    await handle.result()
    return handle


async def consent_notice(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    """A consent two years old: the notice goes out and is recorded; the run continues as new."""
    c = _customer()
    await stack.journeys.update_customer(c)
    first_run = (await stack.journeys.client.get_workflow_handle(consent_notice_id(c.customer_id)).describe()).run_id
    await env.sleep(timedelta(days=731) - (factories.clock - c.marketing_consent[Channel.SMS]))
    return stack.journeys.client.get_workflow_handle(consent_notice_id(c.customer_id), run_id=first_run)


async def win_back(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    """Active once, then quiet for 60 days: the offer, no open, the SMS second touch."""
    c = _customer(app=True)
    handle = await stack.journeys.customer_active(c.customer_id, await env.get_current_time(), customer=c)
    await env.sleep(timedelta(days=10))
    await stack.journeys.customer_active(c.customer_id, await env.get_current_time())
    await handle.result()
    return handle


async def post_purchase_operator(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    """An operator resends the payment message by SMS, skips the review delay, exits before the sale."""
    c = _customer()
    o = factories.order(c)
    handle = await stack.journeys.order_paid(o, c, settings={"review_hours_kst": None})
    await env.sleep(timedelta(minutes=5))
    who = {"operator": "jimin", "reason": "customer called"}
    await stack.journeys.resend(handle.id, "payment_complete", channel=Channel.SMS, **who)
    await env.sleep(timedelta(hours=20))
    await stack.journeys.order_shipped(o.order_id)
    await env.sleep(timedelta(days=1))
    await stack.journeys.order_delivered(o.order_id)
    await env.sleep(timedelta(hours=1))
    await stack.journeys.skip_wait(handle.id, **who)
    await env.sleep(timedelta(hours=1))
    await stack.journeys.exit_journey(handle.id, **who)
    await handle.result()
    return handle


async def cart_reentry(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    """A new cart inside the re-entry cooldown: each step ends at its first channel (a rule about the customer)."""
    c = _customer(app=True)
    cart = {"items": [{"name": "양말", "unit_price": 5000}]}
    first = await stack.journeys.cart_updated(c.customer_id, cart, customer=c)
    await env.sleep(timedelta(hours=2))
    await stack.journeys.purchase(c.customer_id, "o-reentry-1")
    await first.result()
    await env.sleep(timedelta(days=2))
    second = await stack.journeys.cart_updated(c.customer_id, cart)
    await second.result()
    return second


async def post_purchase_skip_as(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    """Shipped; an operator skips the wait for delivery as order.delivered; the review and the sale follow."""
    c = _customer()
    o = factories.order(c)
    handle = await stack.journeys.order_paid(o, c, settings={"review_hours_kst": None})
    await env.sleep(timedelta(hours=20))
    await stack.journeys.order_shipped(o.order_id)
    await env.sleep(timedelta(hours=5))
    await stack.journeys.skip_wait(
        handle.id, operator="jimin", reason="handed over at the counter", as_event="order.delivered"
    )
    await handle.result()
    return handle


async def post_purchase_late(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    """Shipped on day 29, delivered on day 45, without stage search (from 1.4).

    The wait for delivery takes the wait for shipping's timer, which fires on day 30 before its
    deadline (day 59): a timer for the rest starts then (engine 4). No JourneyStage is written.
    """
    c = _customer()
    o = factories.order(c)
    handle = await stack.journeys.order_paid(o, c, settings={"review_hours_kst": None, "stage_search": False})
    return await _ship_and_deliver(
        env, stack, o.order_id, handle, shipped_after=timedelta(days=29), delivered_after=timedelta(days=16)
    )


async def _cart_over_the_cap(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    """One ad a week (ad_cap 1): the push goes out, the coupon 24 hours later is over the cap."""
    _, handle = await _start_cart(stack)
    await handle.result()
    return handle


async def cart_continue_as_new(env: WorkflowEnvironment, stack: Stack) -> WorkflowHandle:
    """Updates past the run's history limit (100 events): the first run continues as new."""
    c, handle = await _start_cart(stack)
    first_run = (await handle.describe()).run_id
    for i in range(40):
        await stack.journeys.cart_updated(c.customer_id, {"items": [{"name": f"상품{i}", "unit_price": 1000}]})
        await env.sleep(timedelta(minutes=1))
    await stack.journeys.purchase(c.customer_id, "o-can-1")
    await handle.result()
    return stack.journeys.client.get_workflow_handle(handle.id, run_id=first_run)


SCENARIOS: dict[str, Scenario] = {
    "cart_reentry": cart_reentry,
    "post_purchase_skip_as": post_purchase_skip_as,
    "post_purchase_operator": post_purchase_operator,
    "post_purchase": post_purchase,
    "post_purchase_fallback": post_purchase_fallback,
    "post_purchase_outage": post_purchase_outage,
    "post_purchase_gateway": post_purchase_gateway,
    "post_purchase_unknown_customer": post_purchase_unknown_customer,
    "cart": cart,
    "care": care,
    "consent_notice": consent_notice,
    "win_back": win_back,
    "cart_capped": _cart_over_the_cap,  # the coupon waits 2 days at most for the window: skipped
    "cart_deferred": _cart_over_the_cap,  # it may wait 7 days: deferred, then sent
    "cart_continue_as_new": cart_continue_as_new,
    "cart_experiment": cart,  # from 1.3: the split of the reference experiment (cart_coupon_timing)
    "post_purchase_late": post_purchase_late,  # from 1.4: a shared timer fires before its wait's deadline
}
# What a scenario's stack runs with, besides the defaults (embedded_stack's options).
STACKS: dict[str, dict[str, Any]] = {
    "care": {"care_segment": "first_order"},
    "consent_notice": {"consent_notices": True},
    "cart_capped": {"settings": Settings(ad_cap=1)},
    "cart_deferred": {"settings": Settings(ad_cap=1), "cart": CartSettings(coupon_defer_within=timedelta(days=7))},
    "cart_continue_as_new": {"cart": CartSettings(continue_as_new_after=100)},
    "cart_experiment": {"cart": CartSettings(coupon_experiment=True)},
}


async def main(version: str, only: list[str]) -> None:
    """Each scenario on a test server of its own: a journey one leaves waiting cannot hold up the next."""
    for name, scenario in SCENARIOS.items():
        if only and name not in only:
            continue
        env = await start_test_environment()  # the testing kit's: our search attributes registered
        try:
            factories.clock = await env.get_current_time()
            with tempfile.TemporaryDirectory() as tmp:
                async with embedded_stack(
                    env.client,
                    database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'h.db'}",
                    task_queue=f"history-{name}",
                    receipt_timing=ReceiptTiming.BEFORE_RESPONSE,
                    **({"care_segment": "off"} | STACKS.get(name, {})),
                ) as stack:
                    async with stack.worker():
                        handle = await scenario(env, stack)
                        history = await handle.fetch_history()
        finally:
            await env.shutdown()
        path = HERE / f"{name}-{version}.json"
        path.write_text(history.to_json())
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tests.histories.regenerate <version> [scenario ...]")
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
