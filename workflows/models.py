"""Journey inputs, business events and timelines (pydantic, stored in workflow history).

Models here keep ``extra="ignore"`` so an older worker can read a newer payload, and use no
``default_factory`` that reads the clock (workflow determinism).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from durable_journeys.activities.contracts import (
    EDGE,
    Channel,
    OpaqueId,
    PlainText,
    Purpose,
    Variant,
    bounded_json,
)

# Bounds on what callers put into history (docs/architecture.md §8a): a 9,000-item order or a 10**5000 amount
# is refused at the facade and at /events, never sent to Temporal. Static bounds are generous
# enough for anything older code let into history (a model that no longer loads would fail a
# running journey on replay); text checks run on new input only (``EDGE``).
MAX_ORDER_ITEMS = 1000
MAX_CART_ITEMS = 200
MAX_AMOUNT = 10**12  # KRW
MAX_QUANTITY = 10**6
MAX_DURATION = timedelta(days=3650)  # beyond what a timer can hold, a setting is a mistake

OrderId = OpaqueId
CustomerId = OpaqueId


class EventType(StrEnum):
    """Business and engagement events a journey reacts to (signal ``event``)."""

    ORDER_PAID = "order.paid"
    ORDER_SHIPPED = "order.shipped"
    ORDER_DELIVERED = "order.delivered"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_REFUNDED = "order.refunded"
    PURCHASE = "purchase"
    CART_UPDATED = "cart.updated"
    CART_CLEARED = "cart.cleared"
    APP_INSTALLED = "app.installed"
    APP_OPENED = "app.opened"
    MESSAGE_OPENED = "message.opened"
    MESSAGE_CLICKED = "message.clicked"
    UNSUBSCRIBED = "unsubscribed"
    CONSENT_CHANGED = "consent.changed"
    CUSTOMER_ACTIVE = "customer.active"


class JourneyEvent(BaseModel):
    """One business event; ``event_id`` makes a redelivered event harmless."""

    model_config = ConfigDict(extra="ignore")

    type: EventType
    event_id: PlainText | None = Field(default=None, max_length=200)
    occurred_at: datetime | None = Field(default=None, description="when it happened, per the sender")
    received_at: datetime | None = Field(default=None, description="journey time it reached the journey")
    data: Annotated[dict[str, Any], AfterValidator(bounded_json)] = Field(
        default_factory=dict, description="per event type, see EVENT_DATA; at most 64 KiB of JSON, 8 levels deep"
    )


class OrderItem(BaseModel):
    """One line of an order."""

    model_config = ConfigDict(extra="ignore")

    name: PlainText = Field(min_length=1, max_length=200)
    quantity: int = Field(default=1, ge=1, le=MAX_QUANTITY)
    unit_price: int = Field(ge=0, le=MAX_AMOUNT, description="KRW")


class Order(BaseModel):
    """A paid order."""

    model_config = ConfigDict(extra="ignore")

    order_id: OrderId
    customer_id: CustomerId
    amount: int = Field(gt=0, le=MAX_AMOUNT, description="total paid, KRW")
    items: list[OrderItem] = Field(min_length=1, max_length=MAX_ORDER_ITEMS)
    paid_at: datetime | None = None


FallbackMode = Literal["journey", "gateway"]


class JourneySettings(BaseModel):
    """What every journey's sends share: how long to wait for a receipt and for one provider call."""

    model_config = ConfigDict(extra="ignore")

    receipt_timeout: timedelta = Field(default=timedelta(minutes=10), gt=timedelta(0), le=MAX_DURATION)
    send_timeout: timedelta = Field(
        default=timedelta(seconds=30),
        gt=timedelta(0),
        le=MAX_DURATION,
        description="one provider call, before it is retried",
    )
    send_deadline: timedelta | None = Field(
        default=timedelta(days=2),
        gt=timedelta(0),
        le=MAX_DURATION,
        description="an outage longer than this (from the step's start) ends the step 'expired'; None: never",
    )
    unknown_window: timedelta = Field(
        default=timedelta(hours=6),
        gt=timedelta(0),
        le=MAX_DURATION,
        description="how long a send whose outcome is unknown is reconciled before the step ends 'unknown'",
    )
    max_resends_per_step: int = Field(
        default=3, ge=0, le=100, description="an operator may resend one step this many times in a run"
    )
    fallback: dict[Annotated[str, Field(max_length=100)], FallbackMode] = Field(
        default_factory=dict,
        max_length=50,
        description='step -> "journey" (the journey waits for each receipt and falls back itself, across '
        'providers) or "gateway" (one provider call carries the channels; the provider falls back and its '
        'receipt names the channel that delivered); "*" for every step; default "journey"',
    )

    stage_search: bool = Field(
        default=True,
        description="write the JourneyStage search attribute when the journey waits and when it ends, so that "
        "'journeys list --stage' and the Temporal UI's list find runs by stage (each write is one billed "
        "action); false: no JourneyStage at all (none at the start either); the stage shows only in the run's "
        "current details, 'journeys skip' and the timeline, and each journey costs up to one action per wait less",
    )

    def fallback_mode(self, step: str) -> FallbackMode:
        """How ``step`` falls back to its next channel."""
        return self.fallback.get(step) or self.fallback.get("*") or "journey"


class PostPurchaseSettings(JourneySettings):
    """Timings and links of the post-purchase journey (the demo compresses the timings)."""

    review_delay: timedelta = Field(default=timedelta(days=3), ge=timedelta(0), le=MAX_DURATION)
    sale_after_delivery: timedelta = Field(default=timedelta(days=14), ge=timedelta(0), le=MAX_DURATION)
    sale_defer_within: timedelta = Field(
        default=timedelta(days=3),
        ge=timedelta(0),
        le=MAX_DURATION,
        description="a sale over the frequency cap waits for the window this long at most, then is skipped",
    )
    give_up_after: timedelta = Field(default=timedelta(days=30), gt=timedelta(0), le=MAX_DURATION)
    review_hours_kst: tuple[time, time] | None = Field(
        default=(time(10, 0), time(20, 0)), description="review requests wait for this window; None: any time"
    )
    review_url: PlainText = Field(default="https://shop.example/reviews/new?order={order_id}", max_length=500)
    sale_url: PlainText = Field(default="https://shop.example/sale/recent-buyers", max_length=500)


class PostPurchaseInput(BaseModel):
    """Input of the post-purchase journey."""

    model_config = ConfigDict(extra="ignore")

    order: Order
    settings: PostPurchaseSettings = Field(default_factory=PostPurchaseSettings)


class WinBackSettings(JourneySettings):
    """The win-back journey: when a customer counts as dormant, and what the comeback offer says."""

    dormant_after: timedelta = Field(default=timedelta(days=60), gt=timedelta(0), le=MAX_DURATION)
    open_within: timedelta = Field(
        default=timedelta(days=3), gt=timedelta(0), le=MAX_DURATION, description="no open by then: a second touch"
    )
    offer_defer_within: timedelta = Field(
        default=timedelta(days=2), ge=timedelta(0), le=MAX_DURATION, description="over the cap, wait this long at most"
    )
    coupon_code: PlainText = Field(default="COMEBACK15", min_length=1, max_length=40)
    shop_url: PlainText = Field(default="https://shop.example/comeback", max_length=500)
    continue_as_new_after: int = Field(default=500, ge=10, le=10_000, description="activity events per run")


class WinBackInput(BaseModel):
    """Input of a customer's win-back journey (``last_active``: None means now)."""

    model_config = ConfigDict(extra="ignore")

    customer_id: CustomerId
    last_active: datetime | None = None
    settings: WinBackSettings = Field(default_factory=WinBackSettings)
    state: JourneyState | None = Field(default=None, description="set by continue-as-new")


class ConsentNoticeSettings(JourneySettings):
    """The biennial consent notice: how often, how early, at what hours."""

    every: timedelta = Field(
        default=timedelta(days=730), gt=timedelta(days=1), le=MAX_DURATION, description="the law's two years"
    )
    lead: timedelta = Field(
        default=timedelta(days=7), ge=timedelta(0), le=timedelta(days=60), description="sent this long before"
    )
    notice_hours_kst: tuple[time, time] = (time(10, 0), time(20, 0))
    retry_after: timedelta = Field(default=timedelta(days=1), gt=timedelta(0), le=timedelta(days=30))


class ConsentNoticeInput(BaseModel):
    """Input of a customer's consent-notice journey."""

    model_config = ConfigDict(extra="ignore")

    customer_id: CustomerId
    settings: ConsentNoticeSettings = Field(default_factory=ConsentNoticeSettings)
    state: JourneyState | None = Field(default=None, description="set by continue-as-new")


class Outcome(StrEnum):
    """What happened at one point of a journey."""

    SENT = "sent"  # accepted by the provider, waiting for a receipt
    DELIVERED = "delivered"
    FAILED = "failed"  # failure receipt, or the send could not be made
    REJECTED = "rejected"
    NO_RECEIPT = "no_receipt"
    SKIPPED = "skipped"
    DEFERRED = "deferred"
    LATE_RECEIPT = "late_receipt"
    NOT_DELIVERED = "not_delivered"  # every channel of a step failed
    WAITING = "waiting"  # the store or the provider is down: the step waits and tries again
    UNKNOWN = "unknown"  # the send may have gone out; reconciling did not tell: nothing else is sent
    EXPIRED = "expired"  # an outage outlasted the step's deadline: nothing was sent
    CONFIG_ERROR = "config_error"
    EVENT = "event"
    IGNORED = "ignored"  # an event whose data the journey could not read
    OPERATOR = "operator"  # an operator's action (skip_wait, exit, resend): who and why in detail
    SPLIT = "split"  # the customer's variant of an experiment (step ``split:<experiment>``)
    ENDED = "ended"


class TimelineEntry(BaseModel):
    """One line of a journey's timeline (query ``timeline``)."""

    model_config = ConfigDict(extra="ignore")

    step: str
    at: datetime
    elapsed: timedelta = Field(description="journey time since the run started")
    outcome: Outcome
    channel: Channel | None = None
    detail: str | None = None


class SentStep(BaseModel):
    """A step that went out: what an operator's resend sends again, and the keys of its messages."""

    model_config = ConfigDict(extra="ignore")

    template: str
    variables: dict[str, str]
    purpose: Purpose
    keys: list[str] = Field(default_factory=list)


class JourneyState(BaseModel):
    """A journey run's state in one structure: what continue-as-new carries and the query ``state`` reads.

    A journey with state of its own (the cart's contents) subclasses it and names the subclass in
    ``state_model``. Not here, because a run holds them only in flight and ends or continues as new
    only once they are settled: events the story has not read yet, receipts of the step it is on,
    the wait it is in.
    """

    model_config = ConfigDict(extra="ignore")

    customer_id: str = ""
    stage: str = Field(default="started", description="the story's stage, as last given to stage()")
    customer_unknown: bool = Field(default=False, description="the last send found no profile")
    runs: int = Field(default=1, description="runs of this journey so far, continue-as-new included")
    timeline: list[TimelineEntry] = Field(default_factory=list)
    timeline_events: int = Field(default=0, description="event and ignored entries this run (bounded)")
    # Insertion-ordered (a dict: membership in O(1)); the newest are carried over continue-as-new.
    event_ids: dict[str, None] = Field(default_factory=dict)
    event_counts: dict[EventType, int] = Field(default_factory=dict, description="events taken this run, by type")
    sent_steps: dict[str, SentStep] = Field(default_factory=dict)
    resends: dict[str, int] = Field(default_factory=dict, description="step -> resends so far (numbers their keys)")
    variants: dict[str, str] = Field(default_factory=dict, description="experiment -> the variant taken (split)")

    @field_validator("event_ids", mode="before")
    @classmethod
    def _ids_as_list(cls, value: object) -> object:
        """A list of ids (what 1.0's cart carried) reads as the ordered set."""
        return dict.fromkeys(value) if isinstance(value, list) else value

    def carried(self, *, timeline: int, event_ids: int) -> JourneyState:
        """The state the next run starts from: the newest ``timeline`` entries and ``event_ids``, ``runs`` + 1.

        The per-run counts (events by type, event entries in the timeline) start again.
        """
        return self.model_copy(
            update={
                "runs": self.runs + 1,
                "timeline": self.timeline[-timeline:],
                "event_ids": dict.fromkeys(list(self.event_ids)[-event_ids:]),
                "timeline_events": 0,
                "event_counts": {},
            },
            deep=True,
        )


class OperatorAction(BaseModel):
    """Who acts on a running journey, and why (Updates ``skip_wait`` and ``exit``); kept in its timeline."""

    model_config = ConfigDict(extra="forbid")

    operator: PlainText = Field(min_length=1, max_length=64, description="who acts (a name or login)")
    reason: PlainText = Field(min_length=1, max_length=300, description="why, for whoever reads the timeline")


class SkipAction(OperatorAction):
    """Update ``skip_wait``: end the current wait; with ``as_event``, as if that event had come."""

    as_event: EventType | None = Field(
        default=None, description="one of the events the journey waits for (e.g. order.delivered)"
    )


class WaitInfo(BaseModel):
    """What a journey waits for now, and what a skip would do (query ``waiting``)."""

    waiting: str | None = Field(default=None, description="the wait's summary; None: not waiting now")
    on_skip: str | None = Field(default=None, description="what skip_wait does to it")
    events: list[EventType] = Field(default_factory=list, description="events it waits for: skip_wait as_event=")


class ResendAction(OperatorAction):
    """Update ``resend``: send ``step`` again on ``channel`` (default: the channel it went out on)."""

    step: PlainText = Field(min_length=1, max_length=100)
    channel: Channel | None = None


class StepResult(BaseModel):
    """What ``send_with_fallback`` achieved."""

    step: str
    delivered: Channel | None = None
    config_error: bool = False
    ended: Outcome | None = Field(default=None, description="UNKNOWN or EXPIRED when the step ended so")


class JourneyResult(BaseModel):
    """A finished journey."""

    model_config = ConfigDict(extra="ignore")

    journey: str
    outcome: str
    timeline: list[TimelineEntry]


class CartItem(OrderItem):
    """One line of a shopping cart (the same fields and limits as an order's line)."""


class Cart(BaseModel):
    """A cart's contents as the app last saw them."""

    model_config = ConfigDict(extra="ignore")

    items: list[CartItem] = Field(min_length=1, max_length=MAX_CART_ITEMS)
    url: PlainText = Field(default="https://shop.example/cart", max_length=500)

    @property
    def total(self) -> int:
        return sum(i.unit_price * i.quantity for i in self.items)


class CartSettings(JourneySettings):
    """Timings of the cart-abandonment journey."""

    idle_after: timedelta = Field(default=timedelta(hours=1), gt=timedelta(0), le=MAX_DURATION)
    second_touch_after: timedelta = Field(default=timedelta(hours=24), gt=timedelta(0), le=MAX_DURATION)
    reentry_cooldown: timedelta = Field(default=timedelta(days=7), ge=timedelta(0), le=MAX_DURATION)
    coupon_code: str = Field(default="CART10", min_length=1, max_length=40)
    coupon_defer_within: timedelta = Field(
        default=timedelta(days=2),
        ge=timedelta(0),
        le=MAX_DURATION,
        description="a coupon over the frequency cap waits for the window this long at most, then is skipped",
    )
    continue_as_new_after: int = Field(default=2000, ge=100, description="history events per run")
    # The reference experiment (README "Experiments"): when on, the coupon's wait after the push
    # is the customer's variant's, not second_touch_after; a variant named "control" gets none.
    coupon_experiment: bool = Field(default=False, description="split the coupon's timing (cart_coupon_timing)")
    coupon_variants: dict[Annotated[str, Field(max_length=64)], timedelta] = Field(
        default_factory=lambda: {"12h": timedelta(hours=12), "24h": timedelta(hours=24)},
        min_length=1,
        max_length=10,
        description="variant -> the coupon's wait after the push (equal weights; operators reweigh live)",
    )

    @field_validator("coupon_variants")
    @classmethod
    def _variant_waits(cls, value: dict[str, timedelta]) -> dict[str, timedelta]:
        for name, wait in value.items():
            Variant(name=name)  # 1-64 letters, digits and _.-
            if not timedelta(0) < wait <= MAX_DURATION:
                raise ValueError(f"{name}: the wait must be positive and at most {MAX_DURATION.days} days")
        return value


class CartState(JourneyState):
    """A cart journey's state: the engine's, and the cart's contents and where the story is."""

    cart: Cart | None = None
    last_update_at: datetime | None = None
    updates: int = 0
    pushed_at: datetime | None = None
    push_delivered: bool = False


class CartInput(BaseModel):
    """Input of the cart-abandonment journey (``state`` is set by continue-as-new)."""

    model_config = ConfigDict(extra="ignore")

    customer_id: CustomerId
    settings: CartSettings = Field(default_factory=CartSettings)
    state: CartState | None = None


class CareSettings(JourneySettings):
    """Timings and links of the post-purchase care journey."""

    banner_after: timedelta = Field(default=timedelta(days=7), ge=timedelta(0), le=MAX_DURATION)
    tier_message_after: timedelta = Field(default=timedelta(days=14), ge=timedelta(0), le=MAX_DURATION)
    tutorial_url: PlainText = Field(default="https://shop.example/guide", max_length=500)
    recommendation_url: PlainText = Field(default="https://shop.example/for-you", max_length=500)


class CareInput(BaseModel):
    """Input of the post-purchase care journey: the segment it starts in (no contact details)."""

    model_config = ConfigDict(extra="ignore")

    customer_id: CustomerId
    order_id: OrderId
    app_installed: bool = False
    tier: PlainText = Field(default="regular", max_length=32)
    settings: CareSettings = Field(default_factory=CareSettings)


# What each event type carries in ``data``: checked by the facade and by ``POST /events`` before
# anything is signalled, so a journey only ever sees data it can read.


class _EventData(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoEventData(_EventData):
    """``app.installed``, ``app.opened``, ``cart.cleared``, ``unsubscribed``: no data."""


class CartUpdatedData(_EventData):
    """``cart.updated``: the cart as the app now sees it."""

    cart: Cart


class PurchaseData(_EventData):
    """``purchase``: the order that ended the cart journey, if known."""

    order_id: OrderId | None = None


class OrderEventData(_EventData):
    """``order.*``: optional shipping details."""

    carrier: PlainText | None = Field(default=None, max_length=40)
    tracking_number: PlainText | None = Field(default=None, max_length=64)
    reason: PlainText | None = Field(default=None, max_length=200)


class EngagementData(_EventData):
    """``message.opened`` / ``message.clicked``: which message, if known."""

    step: PlainText | None = Field(default=None, max_length=100)
    channel: Channel | None = None
    url: PlainText | None = Field(default=None, max_length=500)


EVENT_DATA: dict[EventType, type[BaseModel]] = {
    EventType.ORDER_PAID: OrderEventData,
    EventType.ORDER_SHIPPED: OrderEventData,
    EventType.ORDER_DELIVERED: OrderEventData,
    EventType.ORDER_CANCELLED: OrderEventData,
    EventType.ORDER_REFUNDED: OrderEventData,
    EventType.PURCHASE: PurchaseData,
    EventType.CART_UPDATED: CartUpdatedData,
    EventType.CART_CLEARED: NoEventData,
    EventType.APP_INSTALLED: NoEventData,
    EventType.APP_OPENED: NoEventData,
    EventType.MESSAGE_OPENED: EngagementData,
    EventType.MESSAGE_CLICKED: EngagementData,
    EventType.UNSUBSCRIBED: NoEventData,
    EventType.CONSENT_CHANGED: NoEventData,
    EventType.CUSTOMER_ACTIVE: NoEventData,
}


def event_data(event_type: EventType, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` checked against its event type's model, as JSON-ready values (unset fields left out).

    Raises:
        pydantic.ValidationError: the data does not fit the event type.
    """
    return EVENT_DATA[event_type].model_validate(data, context=EDGE).model_dump(mode="json", exclude_none=True)
