"""The cart-abandonment journey: push after the cart goes idle, coupon if the push is ignored.

Storyboard (journey time):

1. Every ``cart.updated`` resets the idle timer. ``idle_after`` (1 h) after the last update: a
   reminder push with the cart's items (app push if the customer has a token, else web push).
2. ``second_touch_after`` (24 h) after that, unless the push was opened or clicked: a coupon by
   Kakao Brand Message (with Kakao marketing consent) or else by email. Customers who never got
   the push (no app, no browser subscription) get the coupon at the same moment.
3. ``purchase`` or ``cart.cleared`` ends the journey at once, whatever it waits on: no send
   starts after one arrived, even one landing in the same instant as a timer.

The reference experiment (``coupon_experiment``): after the push, the split
``cart_coupon_timing`` gives the customer a variant of ``coupon_variants`` (12 h against 24 h),
whose wait replaces ``second_touch_after``; a variant named ``control`` ends the journey
without a coupon. Runs started without it never split, so their history replays as before.

One run per customer (``cart:{customer_id}``), fed by signal-with-start. A new cart after a run
ended starts a new run; its sends are skipped while another run of this id sent within
``reentry_cooldown`` (7 days), but the cart is still tracked. A run continues-as-new (state kept)
before its history grows past ``continue_as_new_after`` events.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

from durable_journeys.activities.contracts import (
    Channel,
    Purpose,
)
from durable_journeys.workflows.models import (
    Cart,
    CartInput,
    CartSettings,
    CartState,
    EventType,
    JourneyEvent,
    JourneyResult,
    JourneySettings,
)
from durable_journeys.workflows.steps import JourneyWorkflow

JOURNEY = "cart"
COUPON_EXPERIMENT = "cart_coupon_timing"
CONTROL = "control"
PUSH_CHANNELS = (Channel.PUSH, Channel.WEB_PUSH)
COUPON_CHANNELS = (Channel.BRAND_MESSAGE, Channel.EMAIL)
ENGAGED = frozenset({EventType.MESSAGE_OPENED, EventType.MESSAGE_CLICKED})

# step -> (channels, template): the facade checks these templates before a journey starts.
CART_STEPS: dict[str, tuple[tuple[Channel, ...], str]] = {
    "cart_reminder": (PUSH_CHANNELS, "cart_reminder"),
    "cart_coupon": (COUPON_CHANNELS, "cart_coupon"),
}


def cart_id(customer_id: str) -> str:
    """The workflow id of a customer's cart journey (one running at a time)."""
    return f"{JOURNEY}:{customer_id}"


def cart_variables(cart: Cart, settings: CartSettings) -> dict[str, str]:
    """Template variables from the cart (the customer's name comes from the profile)."""
    first = cart.items[0].name
    more = len(cart.items) - 1
    return {
        "item_names": f"{first} 외 {more}건" if more else first,
        "cart_total": f"{cart.total:,}",
        "cart_url": cart.url,
        "coupon_code": settings.coupon_code,
    }


@workflow.defn(name="CartAbandonment")
class CartAbandonmentJourney(JourneyWorkflow):
    """One customer's cart journey.

    Signals: ``event`` (``cart.updated`` with ``data.cart``, ``purchase``, ``cart.cleared``,
    ``message.opened``, ``message.clicked``), ``receipt``. Query: ``timeline``.
    """

    journey = JOURNEY
    steps = CART_STEPS
    listens_to = frozenset({EventType.CART_UPDATED, *ENGAGED})
    exit_events = frozenset({EventType.PURCHASE, EventType.CART_CLEARED})
    reuses_workflow_id = True
    many_events = frozenset({EventType.CART_UPDATED})  # a run continues as new when its history grows
    starts_on = frozenset({EventType.CART_UPDATED})  # signal-with-start: a burst of updates makes one run
    start_stage = "browsing"
    start_summary = "Cart-abandonment journey"

    @classmethod
    def start_input(cls, customer_id: str, event: JourneyEvent, settings: JourneySettings | None) -> CartInput:
        """The customer's cart run (the update itself reaches it as its first event)."""
        own = {"settings": settings} if isinstance(settings, CartSettings) else {}
        return CartInput(customer_id=customer_id, **own)

    state_model = CartState
    state: CartState  # the cart's contents and where its story is, with the engine's state

    @workflow.init
    def __init__(self, inp: CartInput) -> None:
        super().__init__(inp.state)

    @workflow.run
    async def run(self, inp: CartInput) -> JourneyResult:
        self._reentry_cooldown = inp.settings.reentry_cooldown
        return await self.run_story(inp.customer_id, inp.settings, self._story(inp))

    def on_event_received(self, event: JourneyEvent) -> None:
        if event.type is EventType.CART_UPDATED:
            self.state.cart = Cart.model_validate(event.data["cart"])  # raises on bad data: ignored
            self.state.last_update_at = event.received_at
            self.state.updates += 1

    async def _story(self, inp: CartInput) -> str:
        s = inp.settings
        st = self.state
        if st.pushed_at is None:
            self.stage("browsing")
            await self._until_idle(inp)
            if st.cart is None:  # every cart.updated was unreadable: nothing to remind of
                return "no_cart"
            self.stage("reminder")
            result = await self.send_with_fallback(
                "cart_reminder",
                PUSH_CHANNELS,
                "cart_reminder",
                self._variables(s),
                purpose=Purpose.ADVERTISING,
                receipt_timeout=s.receipt_timeout,
            )
            st.pushed_at = workflow.now()
            st.push_delivered = result.delivered is not None

        wait = s.second_touch_after
        if s.coupon_experiment:
            variant = await self.split(COUPON_EXPERIMENT, list(s.coupon_variants))
            if variant == CONTROL:
                return "control"
            wait = s.coupon_variants[variant]
        self.stage("waiting_for_engagement")
        second_touch = st.pushed_at + wait
        while await self.wait_until(
            lambda: self.has_event(ENGAGED) or self._history_is_long(s),
            second_touch - workflow.now(),
            summary="coupon unless the push is opened",
            on_timeout="the coupon goes out now",
        ):
            if self.has_event(ENGAGED):
                return "engaged"
            await self.continue_as_new(inp)

        self.stage("coupon")
        await self.send_with_fallback(
            "cart_coupon",
            COUPON_CHANNELS,
            "cart_coupon",
            self._variables(s),
            purpose=Purpose.ADVERTISING,
            receipt_timeout=s.receipt_timeout,
            on_cap="defer",  # over the cap, the coupon waits for the window (briefly: a stale cart is no use)
            defer_within=s.coupon_defer_within,
        )
        return "completed"

    async def _until_idle(self, inp: CartInput) -> None:
        """Return once ``idle_after`` passed with no update; every update restarts the wait."""
        while True:
            seen = self.state.updates
            last: datetime = self.state.last_update_at or workflow.now()
            changed = await self.wait_until(
                # Evaluated only during this wait, in this iteration: the late binding is harmless.
                lambda: self.state.updates != seen or self._history_is_long(inp.settings),  # noqa: B023
                last + inp.settings.idle_after - workflow.now(),
                summary="cart idle timer",
                on_timeout="the cart counts as idle: the reminder goes out now",
            )
            if not changed:
                return
            if self._history_is_long(inp.settings):
                await self.continue_as_new(inp)

    def _variables(self, s: CartSettings) -> dict[str, str]:
        assert self.state.cart is not None
        return cart_variables(self.state.cart, s)

    def _history_is_long(self, s: CartSettings) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= s.continue_as_new_after
