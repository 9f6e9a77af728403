"""The ``Journeys`` facade: what an app calls on purchase, shipping and cart events.

Built on ``starter/dispatch.py`` (one start path, routing) and ``starter/operating.py`` (operators'
tools); what an app passes in is checked by ``starter/inputs.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio.client import (
    Client,
    WorkflowHandle,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from durable_journeys.activities import (
    Channel,
    CustomerProfile,
    Store,
    TemplateError,
    TemplateRegistry,
    default_templates,
    profile_variables,
)
from durable_journeys.activities.store import ExperimentSetting
from durable_journeys.starter.assembly import journey_classes, journey_templates
from durable_journeys.starter.connect import connect_client
from durable_journeys.starter.database import open_store
from durable_journeys.starter.dispatch import StartCheck
from durable_journeys.starter.errors import InvalidInput, JourneyNotFound, all_problems
from durable_journeys.starter.inputs import (
    AMOUNT_TYPE,
    CUSTOMER_ID_TYPE,
    ORDER_ID_TYPE,
    CareSegment,
    Delivery,
    ExperimentChange,
    apply_experiment_change,
    check_links,
    checked_event,
    parse,
    validated,
)
from durable_journeys.starter.operating import JourneyOperations, JourneySummary
from durable_journeys.starter.settings import Settings, load_settings
from durable_journeys.starter.tokens import mint_inbox_token
from durable_journeys.workflows import (
    ALL_WORKFLOWS,
    TASK_QUEUE,
    CareInput,
    CareSettings,
    Cart,
    CartAbandonmentJourney,
    CartSettings,
    ConsentNoticeInput,
    ConsentNoticeJourney,
    EventType,
    JourneyEvent,
    JourneyResult,
    JourneySettings,
    JourneyWorkflow,
    Order,
    PostPurchaseCareJourney,
    PostPurchaseInput,
    PostPurchaseJourney,
    PostPurchaseSettings,
    WinBackSettings,
    care_id,
    cart_id,
    cart_variables,
    consent_notice_id,
    order_variables,
    post_purchase_id,
)
from durable_journeys.workflows.cart_abandonment import CART_STEPS
from durable_journeys.workflows.post_purchase import POST_PURCHASE_STEPS
from durable_journeys.workflows.post_purchase_care import CARE_STEPS, care_variables
from durable_journeys.workflows.win_back import WIN_BACK_STEPS, WinBackJourney

ENGAGEMENT_KINDS = {EventType.MESSAGE_OPENED: "opened", EventType.MESSAGE_CLICKED: "clicked"}

__all__ = ["CareSegment", "Delivery", "Journeys", "JourneySummary"]


class Journeys(JourneyOperations):
    """Start and steer journeys from an app.

    Build it with :meth:`connect`, or from a client and a store you already have.

    Args:
        client: a Temporal client using the pydantic data converter.
        store: the customer store (profiles are upserted here, never put in history).
        task_queue: the journeys' task queue.
        templates: the template registry, to reject missing variables before a start.
        post_purchase: default timings of the post-purchase journey.
        inbox_token_secret: signs the tokens of :meth:`inbox_token` (``JOURNEYS_INBOX_TOKEN_SECRET``).
        consent_notices: start each consenting customer's biennial consent-notice journey. Off
            for a facade built by hand (tests, scripts); :meth:`connect` takes it from
            ``JOURNEYS_CONSENT_NOTICES``, on by default.
        journeys: the journey classes the worker runs; ``emit`` routes an event to those of the
            customer's runs whose class hears it (``listens_to``, ``exit_events``) and starts those
            that start on it (``starts_on``). Default: the reference journeys; add your own.
        journey_settings: settings per journey class, handed to its ``start_input`` (the reference
            journeys take theirs from ``post_purchase``, ``cart``, ``care`` and ``win_back``).
        link_hosts: the hosts links a caller passes (a cart's ``url``, per-journey review and sale
            URLs) may point to, over https (``JOURNEYS_LINK_HOSTS``).
    """

    def __init__(
        self,
        client: Client,
        store: Store,
        *,
        task_queue: str = TASK_QUEUE,
        templates: TemplateRegistry | None = None,
        post_purchase: PostPurchaseSettings | None = None,
        cart: CartSettings | None = None,
        care: CareSettings | None = None,
        care_segment: CareSegment = "first_order",
        inbox_token_secret: str = "",
        win_back: WinBackSettings | None = None,
        consent_notices: bool = False,
        journeys: Sequence[type[JourneyWorkflow]] = (),
        journey_settings: Mapping[type[JourneyWorkflow], JourneySettings] | None = None,
        link_hosts: Sequence[str] = ("shop.example",),
    ) -> None:
        self.client = client
        self.store = store
        self.task_queue = task_queue
        self.templates = templates or default_templates()
        self.post_purchase = post_purchase or PostPurchaseSettings()
        self.cart = cart or CartSettings()
        self.care = care or CareSettings()
        self.care_segment: CareSegment = care_segment
        self._inbox_token_secret = inbox_token_secret
        self.consent_notices = consent_notices
        self.win_back = win_back or WinBackSettings()
        self.journey_classes = [*ALL_WORKFLOWS, *(j for j in journeys if j not in ALL_WORKFLOWS)]
        self.journey_settings = dict(journey_settings or {})
        self.link_hosts = tuple(link_hosts)
        # The facade's own checks before a reference journey starts from an event (links, templates, profile).
        self._start_checks: dict[type[JourneyWorkflow], StartCheck] = {
            CartAbandonmentJourney: self._check_cart_start,
            WinBackJourney: self._check_win_back_start,
        }

    @classmethod
    async def connect(cls, settings: Settings | None = None, *, create_store: bool = True, **kwargs: Any) -> Journeys:
        """Connect to Temporal and the store as ``settings`` (a ``worker.Settings``) say.

        ``create_store=False``: a missing SQLite store is an error, not made (read-only commands).
        """
        settings = settings or load_settings()
        store = await open_store(settings, create=create_store)
        kwargs.setdefault("inbox_token_secret", settings.inbox_token_secret.get_secret_value())
        kwargs.setdefault("journeys", journey_classes(settings))  # the shop's own, from JOURNEYS_JOURNEYS
        kwargs.setdefault("templates", journey_templates(settings, kwargs["journeys"]))
        kwargs.setdefault("consent_notices", settings.consent_notices)
        kwargs.setdefault("link_hosts", settings.link_hosts)
        return cls(await connect_client(settings), store, task_queue=settings.task_queue, **kwargs)

    async def close(self) -> None:
        """Release the store's connections."""
        await self.store.close()

    def inbox_token(self, customer_id: str, ttl: timedelta = timedelta(hours=1)) -> str:
        """A signed token that opens ``customer_id``'s in-app inbox (``/inbox/{customer_id}``) for ``ttl``.

        The app's backend mints it for a signed-in customer and hands it to the app, which sends it
        as ``Authorization: Bearer <token>``. It opens no other customer's inbox and nothing else.

        Raises:
            InvalidInput: the customer id is malformed.
            ConfigError: no inbox token secret is configured, or ``ttl`` is over 30 days.
        """
        customer_id = validated(CUSTOMER_ID_TYPE, customer_id, "customer_id")
        return mint_inbox_token(self._inbox_token_secret, customer_id, ttl)

    async def order_paid(
        self,
        order: Order | Mapping[str, Any],
        customer: CustomerProfile | Mapping[str, Any],
        *,
        settings: PostPurchaseSettings | Mapping[str, Any] | None = None,
    ) -> WorkflowHandle[Any, Any]:
        """Start the order's post-purchase journey; a repeat call starts nothing new.

        Raises:
            InvalidInput: the order, the customer, or the templates' variables are invalid.
        """
        parsed_order, profile, journey_settings = all_problems(
            ("order", lambda: parse(Order, order, "order")),
            ("customer", lambda: parse(CustomerProfile, customer, "customer")),
            (
                "settings",
                lambda: self.post_purchase if settings is None else parse(PostPurchaseSettings, settings, "settings"),
            ),
        )
        assert isinstance(parsed_order, Order) and isinstance(profile, CustomerProfile)
        assert isinstance(journey_settings, PostPurchaseSettings)
        order = parsed_order
        if settings is not None:
            check_links("settings", journey_settings, self.link_hosts)
        if profile.customer_id != order.customer_id:
            raise InvalidInput("order", ["customer_id: does not match the customer's id"])
        variables = {
            **order_variables(order, journey_settings.review_url, journey_settings.sale_url),
            **profile_variables(profile),
        }
        self._check_templates("order", POST_PURCHASE_STEPS, variables)

        if self.care_segment != "off":
            self._check_templates("care", CARE_STEPS, {**care_variables(self.care), **profile_variables(profile)})

        await self.save_profile(profile)
        first_order = await self.store.record_order(
            profile.customer_id, order.order_id, order.paid_at, amount=order.amount
        )
        handle = await self._start_post_purchase(order, journey_settings)
        if self.care_segment == "every_order" or (self.care_segment == "first_order" and first_order):
            await self._start_care(order, profile)
        # A purchase ends the customer's cart journey (and any other that exits on one) at once.
        await self._emit(
            profile.customer_id,
            JourneyEvent(
                type=EventType.PURCHASE, event_id=f"purchase:{order.order_id}", data={"order_id": order.order_id}
            ),
        )
        return handle

    async def _start_post_purchase(
        self, order: Order, journey_settings: PostPurchaseSettings
    ) -> WorkflowHandle[Any, Any]:
        return await self._start_once(
            PostPurchaseJourney,
            PostPurchaseInput(order=order, settings=journey_settings),
            post_purchase_id(order.order_id),
            order.customer_id,
            f"Post-purchase journey of order {order.order_id}",
        )

    async def _start_care(self, order: Order, profile: CustomerProfile) -> WorkflowHandle[Any, Any]:
        return await self._start_once(
            PostPurchaseCareJourney,
            CareInput(
                customer_id=profile.customer_id,
                order_id=order.order_id,
                app_installed=profile.app_installed,
                tier=profile.tier,
                settings=self.care,
            ),
            care_id(profile.customer_id, order.order_id),
            profile.customer_id,
            f"Care journey after order {order.order_id}",
        )

    async def _start_once(
        self, journey: type[JourneyWorkflow], inp: BaseModel, workflow_id: str, customer_id: str, summary: str
    ) -> WorkflowHandle[Any, Any]:
        """Start a journey whose id may run once, ever: a repeat start returns the existing run."""
        try:
            return await self._start(
                journey, inp, customer_id=customer_id, workflow_id=workflow_id, once=True, summary=summary
            )
        except WorkflowAlreadyStartedError:
            # That journey already ran to its end (a redelivered order.paid): nothing new starts.
            return self.client.get_workflow_handle(workflow_id, result_type=JourneyResult)

    def _check_templates(
        self, what: str, steps: Mapping[str, tuple[tuple[Channel, ...], str]], variables: Mapping[str, str]
    ) -> None:
        problems = []
        for step, (channels, template) in steps.items():
            try:
                self.templates.validate(template, channels, variables)
            except TemplateError as exc:
                problems.append(f"{step}: {exc}")
        if problems:
            raise InvalidInput(what, problems)

    async def cart_updated(
        self,
        customer_id: str,
        cart: Cart | Mapping[str, Any],
        *,
        customer: CustomerProfile | Mapping[str, Any] | None = None,
        event_id: str | None = None,
    ) -> WorkflowHandle[Any, Any]:
        """Feed the customer's cart journey, starting it if none runs (signal-with-start).

        A burst of updates makes one run; each update restarts the idle timer.

        Raises:
            InvalidInput: bad cart or customer, or no profile stored for the customer yet.
        """
        customer_id = validated(CUSTOMER_ID_TYPE, customer_id, "customer_id")

        def checked_cart() -> Cart:
            parsed = parse(Cart, cart, "cart")
            check_links("cart", parsed, self.link_hosts)
            return parsed

        parsed, profile = all_problems(
            ("cart", checked_cart),
            ("customer", lambda: None if customer is None else parse(CustomerProfile, customer, "customer")),
        )
        assert isinstance(parsed, Cart) and (profile is None or isinstance(profile, CustomerProfile))
        if profile is not None and profile.customer_id != customer_id:
            raise InvalidInput("customer", ["customer_id: does not match"])
        if profile is not None:
            await self.save_profile(profile)
        event = checked_event(
            {"type": EventType.CART_UPDATED, "event_id": event_id, "data": {"cart": parsed.model_dump(mode="json")}}
        )
        handle = await self._start_on(CartAbandonmentJourney, customer_id, event, profile=profile)
        assert handle is not None  # the cart journey starts on every update
        return handle

    async def _check_cart_start(self, customer_id: str, event: JourneyEvent, profile: CustomerProfile | None) -> None:
        """A cart update starts or feeds the cart journey only with a readable cart and a stored profile."""
        cart = parse(Cart, event.data.get("cart", {}), "cart")
        check_links("cart", cart, self.link_hosts)
        profile = profile or await self.store.get_customer(customer_id)
        if profile is None:
            raise InvalidInput("customer", [f"customer_id: no profile for {customer_id!r}; pass customer="])
        self._check_templates("cart", CART_STEPS, {**cart_variables(cart, self.cart), **profile_variables(profile)})

    async def cart_cleared(self, customer_id: str) -> Delivery:
        """End the customer's cart journey (the cart was emptied); False if none runs."""
        customer_id = validated(CUSTOMER_ID_TYPE, customer_id, "customer_id")
        return await self._signal_if_running(cart_id(customer_id), JourneyEvent(type=EventType.CART_CLEARED))

    async def set_experiment(
        self,
        experiment: str,
        *,
        operator: str,
        reason: str,
        weights: Mapping[str, int] | None = None,
        winner: str | None = None,
        stop: bool = False,
    ) -> ExperimentSetting:
        """Change an experiment live (README "Experiments"), as ``journeys experiment`` does.

        New ``weights`` (for customers not yet assigned), a ``winner`` for everyone from now on,
        ``stop``, or none of them: run with the journey's own weights again. Journeys read it at
        their split; one that took its variant keeps it.

        Raises:
            InvalidInput: more than one change, a bad name or weight, a variant no customer took,
                or a missing operator or reason.
        """
        if sum((weights is not None, winner is not None, stop)) > 1:
            raise InvalidInput("experiment change", ["one change at a time: weights, winner or stop"])
        try:
            change = ExperimentChange.of(
                experiment, operator=operator, reason=reason, weights=weights, winner=winner, stop=stop
            )
        except ValidationError as exc:
            raise InvalidInput.from_validation("experiment change", exc) from None
        return await apply_experiment_change(self.store, change)

    async def experiment(self, experiment: str) -> ExperimentSetting | None:
        """An experiment's live setting (None: it runs as its journey declares it)."""
        return await self.store.experiment_setting(experiment)

    async def purchase(
        self,
        customer_id: str,
        order_id: str | None = None,
        *,
        amount: int | None = None,
        paid_at: datetime | None = None,
    ) -> bool:
        """A purchase without the order's items: ends the cart journey at once (``order_paid`` does too).

        With ``order_id`` and ``amount`` (KRW) the order is recorded for the report's conversions
        and revenue, as ``order_paid`` records its order; no post-purchase journey starts.

        Raises:
            InvalidInput: an id, or an amount without an order id or out of 1..10**12.
        """
        customer_id = validated(CUSTOMER_ID_TYPE, customer_id, "customer_id")
        if order_id is not None:
            order_id = validated(ORDER_ID_TYPE, order_id, "order_id")
        if amount is not None:
            if order_id is None:
                raise InvalidInput("amount", ["an amount needs the order_id it was paid for"])
            amount = validated(AMOUNT_TYPE, amount, "amount")
            await self.store.record_order(customer_id, order_id, paid_at, amount=amount)
        event_id = f"purchase:{order_id}" if order_id else None
        event = JourneyEvent(
            type=EventType.PURCHASE, event_id=event_id, data={"order_id": order_id} if order_id else {}
        )
        return await self._emit(customer_id, event) > 0

    async def _deliver(self, customer_id: str, event: JourneyEvent) -> int:
        """What ``event`` does to the customer's running journeys (and profile); how many got it."""
        if event.type is EventType.UNSUBSCRIBED:
            await self.unsubscribe(customer_id)
            return 0
        if event.type in ENGAGEMENT_KINDS:  # for the per-step report (journeys report)
            await self.store.record_engagement(
                customer_id,
                ENGAGEMENT_KINDS[event.type],
                event.occurred_at or datetime.now(UTC),
                step=event.data.get("step"),
                channel=event.data.get("channel"),
                event_id=event.event_id,
            )
        return await self._route(customer_id, event)

    def settings_for(self, journey: type[JourneyWorkflow]) -> JourneySettings | None:
        """The settings ``journey`` starts with: ``journey_settings``'s, a reference journey's own, or None."""
        own: dict[type[JourneyWorkflow], JourneySettings] = {
            PostPurchaseJourney: self.post_purchase,
            CartAbandonmentJourney: self.cart,
            PostPurchaseCareJourney: self.care,
            WinBackJourney: self.win_back,
        }
        return self.journey_settings.get(journey) or own.get(journey)

    async def unsubscribe(self, customer_id: str, channels: list[Channel] | None = None) -> None:
        """Withdraw marketing consent (all channels, or some); informational messages still go.

        Raises:
            InvalidInput: the customer id is malformed.
            JourneyNotFound: no such customer.
        """
        customer_id = validated(CUSTOMER_ID_TYPE, customer_id, "customer_id")
        profile = await self.store.get_customer(customer_id)
        if profile is None:
            raise JourneyNotFound(f"no customer {customer_id!r}")
        if channels is None:
            profile = profile.model_copy(update={"unsubscribed": True, "marketing_consent": {}})
        else:
            consent = {c: t for c, t in profile.marketing_consent.items() if c not in channels}
            profile = profile.model_copy(update={"marketing_consent": consent})
        await self.save_profile(profile)

    async def customer_active(
        self,
        customer_id: str,
        at: datetime | None = None,
        *,
        customer: CustomerProfile | Mapping[str, Any] | None = None,
    ) -> WorkflowHandle[Any, Any]:
        """The customer was active (a visit, a login, a purchase): their dormancy clock starts again.

        Starts the customer's win-back journey if none runs (signal-with-start: one run per
        customer); it sends the comeback offer once ``dormant_after`` passes with no activity.

        Args:
            customer_id: the customer.
            at: when (timezone-aware; default: when the journey receives it).
            customer: the profile, if the store does not have it yet (or it changed).

        Raises:
            InvalidInput: the customer id, the time or the profile is invalid.
        """
        customer_id = validated(CUSTOMER_ID_TYPE, customer_id, "customer_id")
        if at is not None and at.utcoffset() is None:
            raise InvalidInput("at", ["at: must be timezone-aware, e.g. datetime.now(UTC)"])
        if customer is not None:
            profile = parse(CustomerProfile, customer, "customer")
            if profile.customer_id != customer_id:
                raise InvalidInput("customer", ["customer_id: does not match"])
            await self.save_profile(profile)
        handle = await self._start_on(
            WinBackJourney, customer_id, JourneyEvent(type=EventType.CUSTOMER_ACTIVE, occurred_at=at)
        )
        assert handle is not None  # the win-back journey starts on every activity
        return handle

    async def _check_win_back_start(
        self, customer_id: str, event: JourneyEvent, profile: CustomerProfile | None
    ) -> None:
        variables = {"coupon_code": self.win_back.coupon_code, "shop_url": self.win_back.shop_url, "customer_name": "-"}
        self._check_templates("win-back", WIN_BACK_STEPS, variables)

    async def update_customer(self, customer: CustomerProfile | Mapping[str, Any]) -> None:
        """Store a customer's new profile (phone, tier, consents ...): every later send uses it.

        Running journeys read the profile at each send, so nothing else is needed; a change of ad
        consents also (re)plans the customer's biennial consent notices.

        Raises:
            InvalidInput: the profile is invalid.
        """
        await self.save_profile(parse(CustomerProfile, customer, "customer"))

    async def save_profile(self, profile: CustomerProfile) -> None:
        """Upsert ``profile``; when its ad consents changed, tell the consent-notice journey.

        A customer with consents gets the journey started (signal-with-start); one without has a
        running journey told, which then ends.
        """
        if not await self.store.upsert_customer(profile) or not self.consent_notices:
            return
        workflow_id = consent_notice_id(profile.customer_id)
        changed = JourneyEvent(type=EventType.CONSENT_CHANGED)
        if not profile.marketing_consent or profile.unsubscribed:
            await self._signal_if_running(workflow_id, changed)
            return
        inp = ConsentNoticeInput(customer_id=profile.customer_id)
        await self._start(
            ConsentNoticeJourney, inp, customer_id=profile.customer_id, workflow_id=workflow_id, event=changed
        )

    async def order_shipped(self, order_id: str, **data: Any) -> Delivery:
        """Tell the order's journey it shipped; true if a running journey got it (see :class:`Delivery`)."""
        return await self._order_event(order_id, EventType.ORDER_SHIPPED, data)

    async def order_delivered(self, order_id: str, **data: Any) -> Delivery:
        """Tell the order's journey it was delivered; true if a running journey got it (see :class:`Delivery`)."""
        return await self._order_event(order_id, EventType.ORDER_DELIVERED, data)

    async def order_cancelled(self, order_id: str, **data: Any) -> Delivery:
        """End the order's journeys (post-purchase and care); nothing more is sent. False if it already ended."""
        return await self._order_event(order_id, EventType.ORDER_CANCELLED, data)

    async def order_refunded(self, order_id: str, **data: Any) -> Delivery:
        """End the order's journey like a cancellation."""
        return await self._order_event(order_id, EventType.ORDER_REFUNDED, data)

    async def _order_event(self, order_id: str, event_type: EventType, data: dict[str, Any]) -> Delivery:
        order_id = validated(ORDER_ID_TYPE, order_id, "order_id")
        event = checked_event({"type": event_type, "event_id": f"{event_type.value}:{order_id}", "data": data})
        if event_type in PostPurchaseCareJourney.exit_events:
            # The order's care journey ends too (no ad or tier message after a cancellation).
            customer_id = await self.store.order_customer(order_id)
            if customer_id is not None:
                await self._signal_if_running(care_id(customer_id, order_id), event)
        return await self.signal_event(post_purchase_id(order_id), event)
