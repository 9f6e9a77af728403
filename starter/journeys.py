"""The ``Journeys`` facade: what an app calls on purchase, shipping and cart events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from durable_journeys.activities import (
    EDGE,
    Channel,
    CustomerProfile,
    Store,
    TemplateError,
    TemplateRegistry,
    default_templates,
    profile_variables,
)
from durable_journeys.activities.masking import mask
from durable_journeys.starter.assembly import journey_classes, journey_templates
from durable_journeys.starter.connect import connect_client
from durable_journeys.starter.database import open_store
from durable_journeys.starter.errors import ActionRefused, InvalidInput, JourneyNotFound, all_problems
from durable_journeys.starter.settings import Settings, load_settings
from durable_journeys.starter.tokens import mint_inbox_token
from durable_journeys.workflows import (
    ALL_WORKFLOWS,
    CUSTOMER_ID,
    JOURNEY,
    JOURNEY_STAGE,
    TASK_QUEUE,
    CareInput,
    CareSettings,
    Cart,
    CartAbandonmentJourney,
    CartSettings,
    ConsentNoticeInput,
    ConsentNoticeJourney,
    CustomerId,
    EventType,
    JourneyEvent,
    JourneyResult,
    JourneySettings,
    JourneyWorkflow,
    OperatorAction,
    Order,
    OrderId,
    PostPurchaseCareJourney,
    PostPurchaseInput,
    PostPurchaseJourney,
    PostPurchaseSettings,
    ResendAction,
    SkipAction,
    TimelineEntry,
    WaitInfo,
    WinBackSettings,
    care_id,
    cart_id,
    cart_variables,
    consent_notice_id,
    event_data,
    event_signal,
    order_variables,
    post_purchase_id,
)
from durable_journeys.workflows.cart_abandonment import CART_STEPS
from durable_journeys.workflows.post_purchase import POST_PURCHASE_STEPS
from durable_journeys.workflows.post_purchase_care import CARE_STEPS, care_variables
from durable_journeys.workflows.win_back import WIN_BACK_STEPS, WinBackJourney

M = TypeVar("M", bound=BaseModel)
CareSegment = Literal["first_order", "every_order", "off"]
_ORDER_ID: TypeAdapter[str] = TypeAdapter(OrderId)
_CUSTOMER_ID: TypeAdapter[str] = TypeAdapter(CustomerId)
WorkflowId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,199}$", description="a journey's id")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$", description="a journey or stage")]
_WORKFLOW_ID: TypeAdapter[str] = TypeAdapter(WorkflowId)
_NAME: TypeAdapter[str] = TypeAdapter(Name)
SIGNAL_WITH_START_ATTEMPTS = 3
_ENGAGEMENTS = {EventType.MESSAGE_OPENED: "opened", EventType.MESSAGE_CLICKED: "clicked"}


class Delivery(StrEnum):
    """What became of an event sent to one journey. True only when a running journey got it.

    ``if await journeys.order_shipped(order_id):`` reads as before; compare with the members to
    tell why an event was not delivered.
    """

    DELIVERED = "delivered"  # a running journey got it
    DUPLICATE = "duplicate"  # its event_id reached this running journey before: dropped
    LIMITED = "limited"  # the journey already took as many events of this type as it can use: dropped
    ENDED = "ended"  # the journey has ended: nothing heard it

    def __bool__(self) -> bool:
        return self is Delivery.DELIVERED


class JourneySummary(BaseModel):
    """One journey in a list (``Journeys.list_journeys``, ``journeys list``)."""

    workflow_id: str
    journey: str
    stage: str | None = None
    customer_id: str | None = None
    status: str
    started_at: datetime | None = None


def operator_action(
    workflow_id: str,
    operator: str,
    reason: str,
    *,
    step: str | None = None,
    channel: Channel | str | None = None,
    as_event: EventType | str | None = None,
) -> OperatorAction:
    """An operator's action checked before anything is asked of Temporal (a resend's when ``step`` is given).

    Raises:
        InvalidInput: the workflow id, operator, reason, step, channel or event type is malformed.
    """
    _validated(_WORKFLOW_ID, workflow_id, "workflow_id")
    who = {"operator": operator, "reason": reason}
    action: OperatorAction
    if step is not None:
        action = _parse(ResendAction, {**who, "step": step, "channel": channel}, "action")
    elif as_event is not None:
        action = _parse(SkipAction, {**who, "as_event": as_event}, "action")
    else:
        action = _parse(OperatorAction, who, "action")
    # History keeps who and why: a phone number or an e-mail address typed into them is masked.
    return action.model_copy(update={"operator": mask(action.operator)[:64], "reason": mask(action.reason)[:300]})


def visibility_query(
    *, customer_id: str | None = None, journey: str | None = None, stage: str | None = None, running: bool = True
) -> str:
    """The Temporal list filter for these (the same text works in the UI's search box).

    Raises:
        InvalidInput: a value that is no id or name (so nothing can be injected into the query).
    """
    parts = ["Journey IS NOT NULL"] if not (customer_id or journey) else []
    if customer_id is not None:
        parts.append(f'CustomerId = "{_validated(_CUSTOMER_ID, customer_id, "customer_id")}"')
    if journey is not None:
        parts.append(f'Journey = "{_validated(_NAME, journey, "journey")}"')
    if stage is not None:
        parts.append(f'JourneyStage = "{_validated(_NAME, stage, "stage")}"')
    if running:
        parts.append('ExecutionStatus = "Running"')
    return " AND ".join(parts)


def _validated(adapter: TypeAdapter[str], value: str, what: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise InvalidInput.from_validation(what, exc) from None


def _attributes(customer_id: str, journey: str, stage: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(CUSTOMER_ID, customer_id),
            SearchAttributePair(JOURNEY, journey),
            SearchAttributePair(JOURNEY_STAGE, stage),
        ]
    )


def _parse(model: type[M], value: M | Mapping[str, Any], what: str) -> M:
    try:
        return model.model_validate(value.model_dump() if isinstance(value, BaseModel) else value, context=EDGE)
    except ValidationError as exc:
        raise InvalidInput.from_validation(what, exc) from None


def link_problem(url: str, hosts: Sequence[str]) -> str | None:
    """Why ``url`` may not go out in a message under the shop's name, or None.

    Only ``https`` URLs on one of ``hosts`` (``JOURNEYS_LINK_HOSTS``; an entry ``.shop.example``
    also allows its subdomains), with no user name or password in them.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port  # raises on a port that is no number
    except ValueError:
        return "is not a URL"
    if parts.scheme.lower() != "https":
        return "must be an https URL"
    if not host or parts.username is not None or parts.password is not None or (port is not None and port != 443):
        return "must name a host only (no user, password or port)"
    for allowed in hosts:
        allowed = allowed.lower().rstrip(".")
        if host == allowed.lstrip(".") or (allowed.startswith(".") and host.endswith(allowed)):
            return None
    return (
        f"host {host[:100]} is not one of JOURNEYS_LINK_HOSTS ({', '.join(hosts) or 'none'}); add the shop's host there"
    )


def check_links(what: str, model: BaseModel, hosts: Sequence[str]) -> None:
    """Every URL field of ``model`` (``url``, ``*_url``) passes :func:`link_problem`.

    Raises:
        InvalidInput: one line per bad link, naming the field.
    """
    problems = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if (name == "url" or name.endswith("_url")) and isinstance(value, str):
            problem = link_problem(value.replace("{order_id}", "order"), hosts)
            if problem:
                problems.append(f"{name}: {problem}")
    if problems:
        raise InvalidInput(what, problems)


def checked_event(event: JourneyEvent | Mapping[str, Any]) -> JourneyEvent:
    """An event whose ``data`` fits its type (``workflows.EVENT_DATA``), ready to signal.

    Raises:
        InvalidInput: the event or its data is malformed, too large or too deep.
    """
    parsed = _parse(JourneyEvent, event, "event")
    try:
        data = event_data(parsed.type, parsed.data)
    except ValidationError as exc:
        raise InvalidInput.from_validation(f"{parsed.type.value} data", exc) from None
    return parsed.model_copy(update={"data": data})


class Journeys:
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
        self._start_checks: dict[type[JourneyWorkflow], Callable[[str, JourneyEvent], Awaitable[None]]] = {
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
        customer_id = _validated(_CUSTOMER_ID, customer_id, "customer_id")
        return mint_inbox_token(self._inbox_token_secret, customer_id, ttl)

    # post-purchase ----------------------------------------------------------------------------

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
            ("order", lambda: _parse(Order, order, "order")),
            ("customer", lambda: _parse(CustomerProfile, customer, "customer")),
            (
                "settings",
                lambda: self.post_purchase if settings is None else _parse(PostPurchaseSettings, settings, "settings"),
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
        first_order = await self.store.record_order(profile.customer_id, order.order_id, order.paid_at)
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

    # cart ------------------------------------------------------------------------------------

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
        customer_id = _validated(_CUSTOMER_ID, customer_id, "customer_id")

        def checked_cart() -> Cart:
            parsed = _parse(Cart, cart, "cart")
            check_links("cart", parsed, self.link_hosts)
            return parsed

        parsed, profile = all_problems(
            ("cart", checked_cart),
            ("customer", lambda: None if customer is None else _parse(CustomerProfile, customer, "customer")),
        )
        assert isinstance(parsed, Cart) and (profile is None or isinstance(profile, CustomerProfile))
        if profile is not None and profile.customer_id != customer_id:
            raise InvalidInput("customer", ["customer_id: does not match"])
        if profile is not None:
            await self.save_profile(profile)
        event = checked_event(
            {"type": EventType.CART_UPDATED, "event_id": event_id, "data": {"cart": parsed.model_dump(mode="json")}}
        )
        handle = await self._start_on(CartAbandonmentJourney, customer_id, event)
        assert handle is not None  # the cart journey starts on every update
        return handle

    async def _check_cart_start(self, customer_id: str, event: JourneyEvent) -> None:
        """A cart update starts or feeds the cart journey only with a readable cart and a stored profile."""
        cart = _parse(Cart, event.data.get("cart", {}), "cart")
        check_links("cart", cart, self.link_hosts)
        profile = await self.store.get_customer(customer_id)
        if profile is None:
            raise InvalidInput("customer", [f"customer_id: no profile for {customer_id!r}; pass customer="])
        self._check_templates("cart", CART_STEPS, {**cart_variables(cart, self.cart), **profile_variables(profile)})

    async def cart_cleared(self, customer_id: str) -> Delivery:
        """End the customer's cart journey (the cart was emptied); False if none runs."""
        customer_id = _validated(_CUSTOMER_ID, customer_id, "customer_id")
        return await self._signal_if_running(cart_id(customer_id), JourneyEvent(type=EventType.CART_CLEARED))

    async def purchase(self, customer_id: str, order_id: str | None = None) -> bool:
        """A purchase without order details: ends the cart journey at once (``order_paid`` does too)."""
        customer_id = _validated(_CUSTOMER_ID, customer_id, "customer_id")
        if order_id is not None:
            order_id = _validated(_ORDER_ID, order_id, "order_id")
        event_id = f"purchase:{order_id}" if order_id else None
        event = JourneyEvent(
            type=EventType.PURCHASE, event_id=event_id, data={"order_id": order_id} if order_id else {}
        )
        return await self._emit(customer_id, event) > 0

    # engagement ------------------------------------------------------------------------------

    async def emit(self, customer_id: str, event: JourneyEvent | Mapping[str, Any]) -> int:
        """Route a customer event to every journey of the customer that cares; returns how many got it.

        Each journey class declares what it hears (``listens_to``, ``exit_events``): ``purchase``,
        ``cart.*`` and ``message.*`` reach the cart journey, ``app.*`` the customer's care
        journeys, ``order.shipped``/``order.delivered`` naming one of the customer's orders its
        post-purchase journey; ``unsubscribed`` updates the profile. A journey that starts on the
        event (``starts_on``) and has no run going on is started, with the input it makes of the
        event (``start_input``), and counted. ``data`` must fit the event type (``workflows.EVENT_DATA``).

        Raises:
            InvalidInput: the customer id, the event or its data is malformed.
        """
        customer_id = _validated(_CUSTOMER_ID, customer_id, "customer_id")
        return await self._emit(customer_id, checked_event(event))

    async def _emit(self, customer_id: str, event: JourneyEvent) -> int:
        delivered = await self._deliver(customer_id, event)
        return delivered + await self._start_triggered(customer_id, event)  # whatever the event's type

    async def _deliver(self, customer_id: str, event: JourneyEvent) -> int:
        """What ``event`` does to the customer's running journeys (and profile); how many got it."""
        if event.type is EventType.UNSUBSCRIBED:
            await self.unsubscribe(customer_id)
            return 0
        if event.type in _ENGAGEMENTS:  # for the per-step report (journeys report)
            await self.store.record_engagement(
                customer_id,
                _ENGAGEMENTS[event.type],
                event.occurred_at or datetime.now(UTC),
                step=event.data.get("step"),
                channel=event.data.get("channel"),
                event_id=event.event_id,
            )
        return await self._route(customer_id, event)

    async def _start_triggered(self, customer_id: str, event: JourneyEvent) -> int:
        """Start (or feed, by signal-with-start) each journey that ``event`` starts; how many got it."""
        started = 0
        for journey in self.journey_classes:
            if event.type not in journey.starts_on:
                continue
            try:
                started += await self._start_on(journey, customer_id, event) is not None
            except WorkflowAlreadyStartedError:
                continue  # once_per_key, and a run has been
        return started

    async def _start_on(
        self, journey: type[JourneyWorkflow], customer_id: str, event: JourneyEvent
    ) -> WorkflowHandle[Any, Any] | None:
        """The run of ``journey`` that ``event`` starts, as the journey declares it; None: none started.

        The journey's input and key come from its ``start_input`` and ``start_key``. If it also hears
        the event, the start is a signal-with-start (a run going on gets the event instead); if not,
        a run going on is left alone. ``once_per_key``: a run that has ended is not started again
        (``WorkflowAlreadyStartedError``).
        """
        check = self._start_checks.get(journey)
        if check is not None:
            await check(customer_id, event)
        inp = journey.start_input(customer_id, event, self.settings_for(journey))
        if inp is None:
            return None
        workflow_id = f"{journey.journey}:{journey.start_key(customer_id, event)}"
        hears = journey.hears(event.type)
        if not hears and await self._running(workflow_id):
            return None  # a run is going on, and the event is not for it
        return await self._start(
            journey,
            inp,
            customer_id=customer_id,
            workflow_id=workflow_id,
            event=event if hears else None,
            once=journey.once_per_key,
        )

    def settings_for(self, journey: type[JourneyWorkflow]) -> JourneySettings | None:
        """The settings ``journey`` starts with: ``journey_settings``'s, a reference journey's own, or None."""
        own: dict[type[JourneyWorkflow], JourneySettings] = {
            PostPurchaseJourney: self.post_purchase,
            CartAbandonmentJourney: self.cart,
            PostPurchaseCareJourney: self.care,
            WinBackJourney: self.win_back,
        }
        return self.journey_settings.get(journey) or own.get(journey)

    async def _route(self, customer_id: str, event: JourneyEvent) -> int:
        """Signal ``event`` to every running journey of the customer whose class hears it; how many got it.

        A journey that starts on the event is left out: its start (a signal-with-start) delivers it.
        """
        hearing = [j for j in self.journey_classes if j.hears(event.type) and event.type not in j.starts_on]
        if not hearing:
            return 0
        # The customer's orders are read only for a journey run per order (care): a purchase
        # routed to the cart and win-back journeys costs no query.
        per_order = any(j.workflow_ids.__func__ is not JourneyWorkflow.workflow_ids.__func__ for j in hearing)  # type: ignore[attr-defined]
        orders = await self.store.customer_orders(customer_id) if per_order else []
        delivered = 0
        for journey in hearing:
            for workflow_id in journey.workflow_ids(customer_id, orders, event):
                delivered += bool(await self._signal_if_running(workflow_id, event))
        return delivered

    async def unsubscribe(self, customer_id: str, channels: list[Channel] | None = None) -> None:
        """Withdraw marketing consent (all channels, or some); informational messages still go.

        Raises:
            InvalidInput: the customer id is malformed.
            JourneyNotFound: no such customer.
        """
        customer_id = _validated(_CUSTOMER_ID, customer_id, "customer_id")
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
        customer_id = _validated(_CUSTOMER_ID, customer_id, "customer_id")
        if at is not None and at.utcoffset() is None:
            raise InvalidInput("at", ["at: must be timezone-aware, e.g. datetime.now(UTC)"])
        if customer is not None:
            profile = _parse(CustomerProfile, customer, "customer")
            if profile.customer_id != customer_id:
                raise InvalidInput("customer", ["customer_id: does not match"])
            await self.save_profile(profile)
        handle = await self._start_on(
            WinBackJourney, customer_id, JourneyEvent(type=EventType.CUSTOMER_ACTIVE, occurred_at=at)
        )
        assert handle is not None  # the win-back journey starts on every activity
        return handle

    async def _check_win_back_start(self, customer_id: str, event: JourneyEvent) -> None:
        variables = {"coupon_code": self.win_back.coupon_code, "shop_url": self.win_back.shop_url, "customer_name": "-"}
        self._check_templates("win-back", WIN_BACK_STEPS, variables)

    async def start_journey(
        self,
        journey: type[JourneyWorkflow],
        inp: BaseModel,
        *,
        customer_id: str,
        key: str | None = None,
        event: JourneyEvent | Mapping[str, Any] | None = None,
        stage: str | None = None,
        once: bool | None = None,
    ) -> WorkflowHandle[Any, Any]:
        """Start any registered journey for a customer; a running one is returned (and gets ``event``).

        The workflow id is ``{journey}:{key}`` (default key: the customer id), the journey's
        search attributes are set, and with ``event`` the start is a signal-with-start: the event
        reaches the run whether it was just started or already running. With ``once`` (default:
        the journey's ``once_per_key``), a run whose id has been used before is not started again
        (``WorkflowAlreadyStartedError``). ``stage`` defaults to the journey's ``start_stage``. A
        journey of your own needs no facade code of its own; one that declares ``starts_on`` is
        started by :meth:`emit` (and ``POST /events``) through the same path, as are the reference
        journeys by the conveniences (``order_paid``, ``cart_updated``, ``customer_active``).

        Raises:
            InvalidInput: the customer id, key or event is malformed, or the journey is not registered.
        """
        customer_id = _validated(_CUSTOMER_ID, customer_id, "customer_id")
        key = customer_id if key is None else _validated(_CUSTOMER_ID, key, "key")
        if journey not in self.journey_classes:
            raise InvalidInput(
                "journey", [f"{journey.__name__} is not registered: pass it as Journeys(journeys=[...])"]
            )
        return await self._start(
            journey,
            inp,
            customer_id=customer_id,
            workflow_id=f"{journey.journey}:{key}",
            event=None if event is None else checked_event(event),
            stage=stage,
            once=journey.once_per_key if once is None else once,
        )

    async def _start(
        self,
        journey: type[JourneyWorkflow],
        inp: BaseModel,
        *,
        customer_id: str,
        workflow_id: str,
        event: JourneyEvent | None = None,
        stage: str | None = None,
        once: bool = False,
        summary: str | None = None,
    ) -> WorkflowHandle[Any, Any]:
        """The one way every journey starts: the facade's conveniences, ``start_journey`` and ``emit``.

        With ``event``, a signal-with-start (a run going on gets the event; one with an ``event_id``
        this journey was told before is dropped here); without, a run going on is returned. The
        journey's search attributes and its summary in the UI are set from its declaration.
        """
        options: dict[str, Any] = {}
        if event is not None:
            if event.event_id is not None and await self.store.event_seen(workflow_id, event.event_id):
                return self.client.get_workflow_handle(workflow_id, result_type=JourneyResult)  # seen: dropped
            options = {"start_signal": event_signal(event), "start_signal_args": [event]}
        else:
            options = {"id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING}
        if once:
            options["id_reuse_policy"] = WorkflowIDReusePolicy.REJECT_DUPLICATE
        summary = summary or journey.start_summary
        if summary:
            options["static_summary"] = summary
        for attempt in range(SIGNAL_WITH_START_ATTEMPTS):
            try:
                handle = await self.client.start_workflow(
                    journey.run,  # type: ignore[attr-defined]
                    inp,
                    id=workflow_id,
                    task_queue=self.task_queue,
                    search_attributes=_attributes(customer_id, journey.journey, stage or journey.start_stage),
                    **options,
                )
                break
            except (RPCError, WorkflowAlreadyStartedError) as exc:
                # A signal-with-start while the run was continuing as new ("completed workflow"), or
                # while a concurrent one won the race to start it (the time-skipping server answers
                # so): nothing was signalled, and the next attempt reaches the run.
                retry = event is not None and not once
                retry = retry and (
                    isinstance(exc, WorkflowAlreadyStartedError) or exc.status is RPCStatusCode.NOT_FOUND
                )
                if not retry or attempt + 1 == SIGNAL_WITH_START_ATTEMPTS:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        if event is not None and event.event_id is not None:
            await self.store.remember_event(workflow_id, event.event_id)
        return handle

    async def signal_journey(
        self, journey: type[JourneyWorkflow], event: JourneyEvent | Mapping[str, Any], *, key: str
    ) -> Delivery:
        """Signal ``event`` to the run of ``journey`` with id ``{journey}:{key}`` (see :class:`Delivery`).

        Raises:
            InvalidInput: the key or the event is malformed.
        """
        key = _validated(_CUSTOMER_ID, key, "key")
        return await self._signal_if_running(f"{journey.journey}:{key}", checked_event(event))

    async def update_customer(self, customer: CustomerProfile | Mapping[str, Any]) -> None:
        """Store a customer's new profile (phone, tier, consents ...): every later send uses it.

        Running journeys read the profile at each send, so nothing else is needed; a change of ad
        consents also (re)plans the customer's biennial consent notices.

        Raises:
            InvalidInput: the profile is invalid.
        """
        await self.save_profile(_parse(CustomerProfile, customer, "customer"))

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

    async def _signal_if_running(self, workflow_id: str, event: JourneyEvent) -> Delivery:
        """Signal a journey; what became of the event (see :class:`Delivery`).

        An event whose id this journey was already signalled is dropped here, and so is one of a
        type the journey has taken as many of as it can use (``JourneyWorkflow.event_limit``):
        neither reaches history, which has a size limit, whatever ids a caller makes up.
        """
        event_id = event.event_id
        if event_id is not None and await self.store.event_seen(workflow_id, event_id):
            return Delivery.DUPLICATE if await self._running(workflow_id) else Delivery.ENDED
        journey = self._journey_of(workflow_id)
        limit = journey.event_limit(event.type) if journey is not None else None
        if limit is not None:
            # A journey whose id later runs reuse counts per day; any other, over its one run.
            bucket = datetime.now(UTC).strftime("%Y-%m-%d") if journey and journey.reuses_workflow_id else ""
            if not await self.store.count_event(workflow_id, event.type.value, limit=limit, bucket=bucket):
                return Delivery.LIMITED if await self._running(workflow_id) else Delivery.ENDED
        try:
            await self.client.get_workflow_handle(workflow_id).signal(event_signal(event), event)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return Delivery.ENDED
            raise
        if event_id is not None:
            await self.store.remember_event(workflow_id, event_id)
        return Delivery.DELIVERED

    def _journey_of(self, workflow_id: str) -> type[JourneyWorkflow] | None:
        """The registered journey class whose ids look like ``workflow_id`` (``{journey}:...``)."""
        name = workflow_id.split(":", 1)[0]
        return next((j for j in self.journey_classes if j.journey == name), None)

    async def _running(self, workflow_id: str) -> bool:
        """Whether a run of ``workflow_id`` is running now (False: ended, or never started)."""
        return await self._status(workflow_id) is WorkflowExecutionStatus.RUNNING

    async def _status(self, workflow_id: str) -> WorkflowExecutionStatus | None:
        """The status of the latest run of ``workflow_id`` (None: no journey with this id was ever started)."""
        try:
            return (await self.client.get_workflow_handle(workflow_id).describe()).status
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return None
            raise

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
        order_id = _validated(_ORDER_ID, order_id, "order_id")
        event = checked_event({"type": event_type, "event_id": f"{event_type.value}:{order_id}", "data": data})
        if event_type in PostPurchaseCareJourney.exit_events:
            # The order's care journey ends too (no ad or tier message after a cancellation).
            customer_id = await self.store.order_customer(order_id)
            if customer_id is not None:
                await self._signal_if_running(care_id(customer_id, order_id), event)
        return await self.signal_event(post_purchase_id(order_id), event)

    # operators -------------------------------------------------------------------------------

    async def list_journeys(
        self,
        *,
        customer_id: str | None = None,
        journey: str | None = None,
        stage: str | None = None,
        running: bool = True,
        limit: int = 100,
    ) -> list[JourneySummary]:
        """Journeys found by Temporal's visibility (the UI's list), newest first.

        Args:
            customer_id: one customer's journeys (search attribute ``CustomerId``).
            journey: one journey (``Journey``, e.g. ``cart``).
            stage: at one stage (``JourneyStage``, e.g. ``waiting_for_delivery``).
            running: only running journeys (default), or ended ones too.
            limit: at most this many (1 to 1000).

        Raises:
            InvalidInput: a filter that is no id or name, or a limit out of range.
        """
        query = visibility_query(customer_id=customer_id, journey=journey, stage=stage, running=running)
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit", ["limit: between 1 and 1000"])
        found: list[JourneySummary] = []
        async for execution in self.client.list_workflows(query, limit=limit):
            attributes = execution.typed_search_attributes
            found.append(
                JourneySummary(
                    workflow_id=execution.id,
                    journey=attributes.get(JOURNEY) or execution.workflow_type,
                    stage=attributes.get(JOURNEY_STAGE),
                    customer_id=attributes.get(CUSTOMER_ID),
                    status=execution.status.name.lower() if execution.status else "unknown",
                    started_at=execution.start_time,
                )
            )
        return found

    async def skip_wait(
        self, workflow_id: str, *, operator: str, reason: str, as_event: EventType | str | None = None
    ) -> str:
        """End the wait a journey is in now (timer, event or receipt), as if it had run out.

        With ``as_event`` (one of the events the wait is for, see :meth:`waiting`), as if that
        event had come instead: skip "wait for delivery" as ``order.delivered``, not as giving up.

        Returns:
            What the journey did, in one line.

        Raises:
            ActionRefused: the journey is not waiting (or not for ``as_event``), has ended or is exiting.
            JourneyNotFound: no such journey.
            InvalidInput: operator or reason missing or too long, or no such event type.
        """
        action = operator_action(workflow_id, operator, reason, as_event=as_event)
        return await self._operate(workflow_id, "skip_wait", action)

    async def waiting(self, workflow_id: str) -> WaitInfo:
        """What a journey waits for now and what :meth:`skip_wait` would do to it (say it before acting).

        Raises:
            JourneyNotFound: no such journey.
        """
        _validated(_WORKFLOW_ID, workflow_id, "workflow_id")
        try:
            info: WaitInfo = await self.client.get_workflow_handle(workflow_id).query(JourneyWorkflow.waiting)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise JourneyNotFound(f"no journey {workflow_id!r}") from None
            raise
        return info

    async def exit_journey(self, workflow_id: str, *, operator: str, reason: str) -> str:
        """End a journey: nothing more is sent (a message already with the provider is not recalled)."""
        return await self._operate(workflow_id, "exit", operator_action(workflow_id, operator, reason))

    async def resend(
        self,
        workflow_id: str,
        step: str,
        *,
        operator: str,
        reason: str,
        channel: Channel | str | None = None,
        wait: float = 30.0,
    ) -> str:
        """Send a journey's step again, under a new idempotency key linked to the first message.

        Consent, opt-out and quiet hours still rule it; frequency caps and the duplicate-content
        window do not (an operator chose to send it again).

        Args:
            workflow_id: the journey.
            step: a step it sent (``journeys inspect`` lists them).
            operator: who acts.
            reason: why.
            channel: the channel (default: the one it went out on); one of the step's channels.
            wait: seconds to wait for the provider's answer; past that the resend goes on, and
                its outcome shows in the timeline.
        """
        action = operator_action(workflow_id, operator, reason, step=step, channel=channel)
        return await self._operate(workflow_id, "resend", action, wait=wait)

    async def _operate(self, workflow_id: str, update: str, action: OperatorAction, *, wait: float = 30.0) -> str:
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            started = await handle.start_update(
                update, action, wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=str
            )
            try:
                async with asyncio.timeout(wait):
                    return str(await started.result())
            except TimeoutError:
                return f"{update} accepted; still in progress: `journeys inspect {workflow_id}` shows how it ends"
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
            raise ActionRefused(f"{workflow_id}: {message}") from None
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                await self._describe_or_not_found(workflow_id)  # there, so it has ended
                raise ActionRefused(f"{workflow_id}: the journey has ended") from None
            raise

    async def _describe_or_not_found(self, workflow_id: str) -> None:
        """Raise ``JourneyNotFound`` unless a journey with this id was ever started."""
        if await self._status(workflow_id) is None:
            raise JourneyNotFound(f"no journey {workflow_id!r}")

    # generic ---------------------------------------------------------------------------------

    async def timeline(self, workflow_id: str) -> list[TimelineEntry]:
        """A journey's timeline so far (works on running and finished journeys)."""
        return await self.client.get_workflow_handle(workflow_id).query(JourneyWorkflow.timeline)

    async def signal_event(self, workflow_id: str, event: JourneyEvent) -> Delivery:
        """Deliver an event to one journey.

        Returns:
            ``Delivery.DELIVERED`` (true) if a running journey got it; otherwise (false) why not:
            ``DUPLICATE`` (that event id reached the running journey before), ``LIMITED`` (the
            journey took as many events of this type as it can use) or ``ENDED``.

        Raises:
            JourneyNotFound: no journey with that id was ever started.
        """
        delivery = await self._signal_if_running(workflow_id, event)
        if delivery is Delivery.ENDED:
            await self._describe_or_not_found(workflow_id)  # ended, or never started?
        return delivery
