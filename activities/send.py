"""The ``send_message`` activity: policy, rendering, idempotent provider call, message log.

Errors become Temporal ``ApplicationError``s here and nowhere else:

=======================  ============  ==========================================
type                     retryable     when
=======================  ============  ==========================================
``ProviderUnavailable``  yes           429/5xx/connect failure (honours Retry-After)
``SendOutcomeUnknown``   yes           may have been sent (timeout after write, lookup failing):
                                       the next attempt reconciles by key; never a fallback
``StoreUnavailable``     yes           the database failed (its text and values are dropped)
``ConfigError``          no            bad template, key or sender: the step stops
=======================  ============  ==========================================

Every other outcome (accepted, rejected, skipped by policy, deferred) is returned as a
:class:`SendOutcome` the workflow branches on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_journeys.activities.contracts import (
    CONFIG_ERROR,
    CONSENT_CLOCKS,
    OUTCOME_UNKNOWN,
    PROVIDER_UNAVAILABLE,
    RECORD_CONSENT_NOTICE,
    SEND_MESSAGE,
    SEND_QUEUES,
    STORE_UNAVAILABLE,
    UNKNOWN_CUSTOMER,
    ConsentClock,
    ConsentClocksRequest,
    ConsentNotice,
    OutcomeStatus,
    SendOutcome,
    SendRequest,
)
from durable_journeys.activities.customers import CustomerProfile
from durable_journeys.activities.metrics import DEFERRED, FALLBACKS, RESENDS, SENDS, SKIPPED, label
from durable_journeys.activities.policy import PolicyConfig, check, mark_advertising
from durable_journeys.activities.store import ContactRefused, MessageRecord, MessageStatus, Store
from durable_journeys.activities.templates import TemplateRegistry, profile_variables
from durable_journeys.providers import (
    Channel,
    ConfigError,
    ErrorClass,
    FallbackMessage,
    GatewayFallbackProvider,
    OutboundMessage,
    Provider,
    ProviderRegistry,
    ProviderUnavailable,
    Purpose,
    ReceiptMode,
    SendResult,
    SendStatus,
    SmsKind,
    sms_kind,
)
from durable_journeys.providers.channels import channel_spec

log = structlog.get_logger("activities.send")


def content_key(template: str, variables: Mapping[str, str]) -> str:
    """The key of a message's content, the same on every channel: its template and variables, hashed.

    Two sends with one key carry the same content (the same coupon, the same notice), whichever
    journey or channel sends them; the hash keeps variable values out of the message log.
    """
    canonical = json.dumps([template, sorted(variables.items())], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _address(profile: CustomerProfile, channel: Channel) -> str | None:
    """The customer's address on ``channel``, as the channel's spec finds it in the profile."""
    return channel_spec(channel).address_of(profile)


def _gateway_of(provider: Provider) -> frozenset[Channel]:
    """The channels ``provider`` can chain itself (none for a provider without gateway fallback)."""
    return provider.gateway_channels if isinstance(provider, GatewayFallbackProvider) else frozenset()


def _log_outcome(bound: Any, outcome: SendOutcome) -> None:
    bound.info(
        "message.sent" if outcome.status is OutcomeStatus.ACCEPTED else "message.not_sent",
        outcome=outcome.status.value,
        provider=outcome.provider,
        error_class=outcome.error_class,
        error_code=outcome.error_code,
        reason=outcome.reason,
        replayed=outcome.replayed,
    )


def failover_key(key: str, provider: str) -> str:
    """The key of a message handed to a later provider of its channel: the first key, linked."""
    return f"{key}~{provider}"


def _handed_off(record: MessageRecord) -> bool:
    """Whether this provider gave the message up for the next one (it was refused or unavailable, never sent)."""
    return record.status is MessageStatus.REJECTED and record.error_class in (
        ErrorClass.CONFIG.value,
        ErrorClass.RETRY.value,
    )


def _from_record(record: MessageRecord) -> SendOutcome:
    accepted = record.status is MessageStatus.ACCEPTED
    return SendOutcome(
        status=OutcomeStatus.ACCEPTED if accepted else OutcomeStatus.REJECTED,
        channel=Channel(record.channel),
        idempotency_key=record.idempotency_key,
        provider=record.provider,
        provider_message_id=record.provider_message_id,
        receipt=ReceiptMode(record.receipt_mode or ReceiptMode.NONE),
        error_class=ErrorClass(record.error_class) if record.error_class else None,
        error_code=record.error_code,
        replayed=True,
    )


def _retry_delay(retry_after: timedelta | None) -> timedelta | None:
    """The provider's Retry-After, but never faster than exponential backoff.

    Backoff is 1 s doubling to 1 min: a provider that says "1 s" through a day-long outage is not
    called 86,400 times.
    """
    if retry_after is None:
        return None
    backoff = timedelta(seconds=min(2 ** (activity.info().attempt - 1), 60))
    return max(retry_after, backoff)


def compose(
    templates: TemplateRegistry,
    policy: PolicyConfig,
    *,
    template: str,
    channel: Channel,
    purpose: Purpose,
    variables: Mapping[str, str],
    to: str,
    idempotency_key: str,
    workflow_id: str | None = None,
    step: str | None = None,
) -> OutboundMessage:
    """The message a provider gets: the template rendered, an ad decorated, SMS or LMS chosen.

    ``journeys templates render`` shows the same message.

    Raises:
        TemplateError: the template cannot be rendered for ``channel`` with ``variables``.
    """
    rendered = templates.render(template, channel, variables)
    body = mark_advertising(rendered.body, channel, purpose, policy)
    kind = sms_kind(body, rendered.subject) if channel_spec(channel).sms else None
    return OutboundMessage(
        channel=channel,
        purpose=purpose,
        to=to,
        body=body,
        subject=rendered.subject if kind is None or kind is SmsKind.LMS else None,
        html=rendered.html,
        template_code=rendered.provider_template_code,
        image_keys=rendered.image_keys,
        variables=dict(variables),
        sms_kind=kind,
        idempotency_key=idempotency_key,
        workflow_id=workflow_id,
        step=step,
    )


def effective_purpose(templates: TemplateRegistry, template: str, asked: Purpose) -> Purpose:
    """Advertising if the journey or the template file says so: a template edited into an ad is one.

    Raises:
        TemplateError: no such template.
    """
    if asked is Purpose.ADVERTISING or templates.get(template).purpose is Purpose.ADVERTISING:
        return Purpose.ADVERTISING
    return Purpose.INFORMATIONAL


class SendActivities:
    """Activities that send messages; built by ``worker.py`` from the store and providers.

    Args:
        store: customers and the message log.
        providers: which provider sends on which channel.
        templates: the template registry.
        policy: contact-policy settings.
        send_queues: provider name -> the task queue its sends run on (rate-limited providers only).
        failover_after: attempts a provider may stay unavailable before the channel's next provider
            takes the message (when the channel has one).
    """

    def __init__(
        self,
        store: Store,
        providers: ProviderRegistry,
        templates: TemplateRegistry,
        policy: PolicyConfig | None = None,
        send_queues: Mapping[str, str] | None = None,
        failover_after: int = 3,
    ) -> None:
        self._store = store
        self._providers = providers
        self._templates = templates
        self._policy = policy or PolicyConfig()
        self._send_queues = dict(send_queues or {})
        self._failover_after = failover_after

    @activity.defn(name=SEND_QUEUES)
    async def send_queues(self) -> dict[Channel, str]:
        """Channel -> the task queue of its provider, for channels whose provider is rate-limited fleet-wide.

        Run as a local activity by a journey run before its first send (and again after a round
        of sends failed): each send is scheduled on its channel's queue, whose workers take at
        most the provider's contracted rate, across every worker. Other channels send on the
        journey's own queue.
        """
        queues: dict[Channel, str] = {}
        for channel in Channel:
            provider = self._providers.route_of(channel)
            if provider in self._send_queues:
                queues[channel] = self._send_queues[provider]
        return queues

    @activity.defn(name=CONSENT_CLOCKS)
    async def consent_clocks(self, req: ConsentClocksRequest) -> list[ConsentClock]:
        """The customer's ad consents still in force, oldest clock first (none for an unsubscribed customer)."""
        profile = await self._store.get_customer(req.customer_id)
        if profile is None or profile.unsubscribed:
            return []
        clocks = []
        for channel, given in profile.marketing_consent.items():
            since = profile.consent_since(channel) or given
            if req.at - since <= req.valid_for:
                clocks.append(ConsentClock(channel=channel, given_at=given, since=since))
        return sorted(clocks, key=lambda c: (c.since, c.channel.value))

    @activity.defn(name=RECORD_CONSENT_NOTICE)
    async def record_consent_notice(self, notice: ConsentNotice) -> None:
        """Record that the consent notice reached the customer: that consent's two years start again."""
        await self._store.record_consent_notice(notice.customer_id, notice.channel.value, notice.at)
        log.info("consent.notice_recorded", customer_id=notice.customer_id, channel=notice.channel.value)

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, req: SendRequest) -> SendOutcome:
        """Send one journey message at most once.

        Raises:
            ApplicationError: ``ProviderUnavailable``/``SendOutcomeUnknown``/``StoreUnavailable``
                (retryable) or ``ConfigError`` (not retryable).
        """
        try:
            outcome = await self._send_message(req)
            await self._note(req, outcome)
            return outcome
        except SQLAlchemyError as exc:
            # A database error's text can carry statement values and row details (a name, a
            # phone): it reaches neither history nor the logs, only its class does.
            log.warning(
                "message.store_error",
                workflow_id=req.workflow_id,
                step=req.step,
                channel=req.channel.value,
                error=type(exc).__name__,
            )
            raise ApplicationError(f"store unavailable ({type(exc).__name__})", type=STORE_UNAVAILABLE) from None

    async def _note(self, req: SendRequest, outcome: SendOutcome) -> None:
        """Count the outcome in the metrics, and remember a skip or a deferral for the report."""
        status = outcome.status
        if outcome.replayed:  # answered from the log: counted when it happened
            return
        journey, step, channel = label(req.journey), label(req.step), req.channel.value
        SENDS.labels(journey, step, channel, label(outcome.provider or "-"), status.value).inc()
        if status is OutcomeStatus.ACCEPTED:
            if req.resend:
                RESENDS.labels(journey, step, channel).inc()
            elif req.supersedes:
                FALLBACKS.labels(journey, step, channel).inc()
        if status in (OutcomeStatus.SKIPPED, OutcomeStatus.DEFERRED):
            reason = label(outcome.reason or "-")
            (SKIPPED if status is OutcomeStatus.SKIPPED else DEFERRED).labels(journey, channel, reason).inc()
            await self._store.record_skip(
                status=status.value,
                reason=reason,
                idempotency_key=outcome.idempotency_key,
                workflow_id=req.workflow_id,
                journey=req.journey,
                step=req.step,
                channel=channel,
                customer_id=req.customer_id,
                journey_time=req.journey_time,
            )

    async def _send_message(self, req: SendRequest) -> SendOutcome:
        key = req.idempotency_key
        try:
            purpose = effective_purpose(self._templates, req.template, req.purpose)
        except ConfigError as exc:
            log.error("message.config_error", workflow_id=req.workflow_id, step=req.step, error=str(exc))
            raise ApplicationError(str(exc), type=CONFIG_ERROR, non_retryable=True) from exc
        if purpose is not req.purpose:
            req = req.model_copy(update={"purpose": purpose})
        bound = log.bind(
            workflow_id=req.workflow_id,
            journey=req.journey,
            step=req.step,
            channel=req.channel.value,
            purpose=req.purpose.value,
        )

        def done(outcome: SendOutcome) -> SendOutcome:
            _log_outcome(bound, outcome)
            return outcome

        def not_sent(reason: str | None, status: OutcomeStatus = OutcomeStatus.SKIPPED, **extra: Any) -> SendOutcome:
            return done(SendOutcome(status=status, channel=req.channel, idempotency_key=key, reason=reason, **extra))

        # A retried attempt settles what an earlier attempt may have sent before anything else:
        # the profile or the policy may have changed since, but a message the provider took
        # is sent, whatever they say now. The channel's providers are settled in order: a later
        # one was used only if the one before handed the message off.
        # (A first attempt of a first request skips these reads: nothing can have been claimed.)
        chain = self._providers.chain(req.channel)
        keys = [key, *(failover_key(key, p.name) for p in chain[1:])]
        start, existing = 0, None
        if req.reconcile or activity.info().attempt > 1:
            for index, k in enumerate(keys):
                record = await self._store.get_message(k)
                if record is None:
                    break
                if _handed_off(record) and index + 1 < len(keys):
                    start = index + 1
                    continue
                if record.status in (MessageStatus.ACCEPTED, MessageStatus.REJECTED):
                    return done(_from_record(record))
                start, existing = index, record
                found = await self._reconcile(record)
                if found is not None:
                    return done(await self._finish(req, k, self._provider_named(record.provider), found))
                break

        profile = await self._store.get_customer(req.customer_id)
        if profile is None:  # visibly wrong, not quiet: most often a process on another database
            bound.warning("message.unknown_customer", hint="is every process on the same JOURNEYS_DATABASE_URL?")
            return not_sent(UNKNOWN_CUSTOMER)
        address = _address(profile, req.channel)
        if address is None or address in profile.dead_addresses:
            return not_sent("address_dead" if address else "no_address", error_class=ErrorClass.FALLBACK)
        if req.reentry_cooldown is not None and await self._store.sent_in_other_episode(
            req.workflow_id, req.episode, since=req.journey_time - req.reentry_cooldown
        ):
            return not_sent("reentry_cooldown")
        decision = check(profile, req.channel, req.purpose, req.journey_time, self._policy)
        if not decision.allowed:
            status = OutcomeStatus.DEFERRED if decision.not_before else OutcomeStatus.SKIPPED
            return not_sent(decision.reason, status, not_before=decision.not_before)

        try:
            if not chain:
                raise ConfigError(f"no provider is configured for channel {req.channel.value}")
            msg = self._message(req, profile, address)
        except ConfigError as exc:
            bound.error("message.config_error", error=str(exc))
            raise ApplicationError(str(exc), type=CONFIG_ERROR, non_retryable=True) from exc

        await self._store.mark_superseded(req.supersedes)
        fallback = self._gateway_fallback(req, profile, address, chain[start]) if req.gateway else []
        if fallback:
            msg = msg.model_copy(update={"fallback": fallback})
        for index in range(start, len(chain)):
            provider, k = chain[index], keys[index]
            # A later provider carries the chain only if it can chain those channels itself.
            keeps_chain = index == start or _gateway_of(provider) >= {f.channel for f in fallback}
            own = msg if keeps_chain else msg.model_copy(update={"fallback": []})
            outcome = await self._send_through(
                req,
                provider,
                own.model_copy(update={"idempotency_key": k}),
                address,
                reconciled=existing is not None and index == start,
                hand_off=index + 1 < len(chain),
                bound=bound,
            )
            if outcome is not None:
                return done(outcome)
            bound.warning("message.handed_off", provider=provider.name, to=chain[index + 1].name)
        raise AssertionError("the last provider of a chain never hands off")  # pragma: no cover

    async def _send_through(
        self,
        req: SendRequest,
        provider: Provider,
        msg: OutboundMessage,
        address: str,
        *,
        reconciled: bool,
        hand_off: bool,
        bound: Any,
    ) -> SendOutcome | None:
        """Send ``msg`` through ``provider`` under its key; None: handed off to the channel's next provider.

        A provider hands off when it refuses our configuration, or stays unavailable (known not
        sent) past ``failover_after`` attempts, and ``hand_off`` says a next provider exists. It
        never hands off while an outcome is unknown.

        Raises:
            ApplicationError: retryable (unavailable, unknown) or not (configuration).
        """
        key = msg.idempotency_key
        try:
            record, created = await self._claim(req, provider, msg)
        except ContactRefused as refused:
            return self._refused(req, key, refused)
        if not created:
            if _handed_off(record) and hand_off:
                return None
            if record.status in (MessageStatus.ACCEPTED, MessageStatus.REJECTED):
                return _from_record(record)
            # Claimed concurrently, or by an attempt that died: ask the provider before sending
            # again (unless this attempt asked already), so a crash between send and log never
            # means two messages.
            found = None if reconciled else await self._reconcile(record)
            if found is not None:
                return await self._finish(req, key, provider, found)
            if record.error_class:  # this attempt calls the provider: no longer "known not sent"
                await self._store.finish_message(key, record.status, error_class=None)

        result = await provider.send(msg)
        if result.status is SendStatus.UNKNOWN:
            await self._store.finish_message(key, MessageStatus.UNKNOWN, error_code=result.error_code)
            found = await self._lookup(provider, key)
            if found is None:
                bound.warning("message.outcome_unknown", error_code=result.error_code)
                raise ApplicationError(
                    f"outcome of {req.channel.value} send unknown ({result.error_code})",
                    type=OUTCOME_UNKNOWN,
                )
            result = found
        if result.error_class is ErrorClass.RETRY:
            if hand_off and activity.info().attempt >= self._failover_after:
                # Known not sent, and unavailable for long enough: the next provider takes it.
                await self._store.finish_message(
                    key, MessageStatus.REJECTED, error_code=result.error_code, error_class=ErrorClass.RETRY.value
                )
                return None
            # Known not sent (refused before it was taken): the step may wait, never double-send.
            await self._store.finish_message(
                key, MessageStatus.SENDING, error_code=result.error_code, error_class=ErrorClass.RETRY.value
            )
            bound.warning("message.retry", error_code=result.error_code)
            raise ApplicationError(
                f"{provider.name} unavailable ({result.error_code})",
                type=PROVIDER_UNAVAILABLE,
                next_retry_delay=_retry_delay(result.retry_after),
            )
        outcome = await self._finish(req, key, provider, result)
        if result.error_class is ErrorClass.RECIPIENT_DEAD:
            await self._store.mark_address_dead(req.customer_id, address)
        if result.error_class is ErrorClass.CONFIG:
            if hand_off:
                bound.error("message.provider_config_error", provider=provider.name, error_code=result.error_code)
                return None
            _log_outcome(bound, outcome)
            raise ApplicationError(
                f"{provider.name} refused our configuration ({result.error_code})",
                type=CONFIG_ERROR,
                non_retryable=True,
            )
        return outcome

    async def _claim(self, req: SendRequest, provider: Provider, msg: OutboundMessage) -> tuple[MessageRecord, bool]:
        """Claim ``msg``'s key in the message log, within the contact policy's caps and windows.

        Raises:
            ContactRefused: the frequency caps, the journey priority or duplicate content refuse it now.
        """
        # An operator's resend is sent again on purpose: no duplicate-content window and no
        # priority hold, but an ad resent is an ad: the frequency caps count it and hold it back.
        limits = self._policy.limits(
            req.journey, req.purpose, req.channel, None if req.resend else content_key(req.template, req.variables)
        )
        if req.resend:
            limits = limits.model_copy(update={"priority_grace": None})
        return await self._store.claim_message(
            limits=limits,
            resend_of=req.resend_of,
            final_channel=msg.fallback[-1].channel.value if msg.fallback else None,
            idempotency_key=msg.idempotency_key,
            workflow_id=req.workflow_id,
            step=req.step,
            channel=req.channel.value,
            customer_id=req.customer_id,
            provider=provider.name,
            purpose=req.purpose.value,
            template=req.template,
            journey_time=req.journey_time,
            episode=req.episode,
            journey=req.journey,
        )

    def _refused(self, req: SendRequest, key: str, refused: ContactRefused) -> SendOutcome:
        """The outcome of a claim the contact policy refused: deferred while it may pass later, else skipped."""
        later = refused.not_before
        capped = refused.reason in ("frequency_cap", "channel_frequency_cap")
        deferrable = refused.reason == "priority_grace" or (capped and req.on_cap == "defer")
        if later is not None and deferrable and (req.defer_until is None or later <= req.defer_until):
            return SendOutcome(
                status=OutcomeStatus.DEFERRED,
                channel=req.channel,
                idempotency_key=key,
                reason=refused.reason,
                not_before=later,
            )
        return SendOutcome(
            status=OutcomeStatus.SKIPPED, channel=req.channel, idempotency_key=key, reason=refused.reason
        )

    def _gateway_fallback(
        self, req: SendRequest, profile: CustomerProfile, address: str, provider: Provider
    ) -> list[FallbackMessage]:
        """The channels of ``req.gateway`` that ``provider`` may fall back to itself, rendered.

        A channel goes along only if the provider handles it in a chain, it is routed to the same
        provider, it reaches the same address, and the contact policy allows it now; the others
        are left out (the journey sees which channel delivered in the receipt).
        """
        chain: list[FallbackMessage] = []
        for channel in req.gateway:
            if channel not in _gateway_of(provider) or self._providers.route_of(channel) != provider.name:
                continue
            if _address(profile, channel) != address:
                continue
            if not check(profile, channel, req.purpose, req.journey_time, self._policy).allowed:
                continue
            rendered = self._message(req.model_copy(update={"channel": channel}), profile, address)
            chain.append(FallbackMessage.model_validate(rendered.model_dump(include=set(FallbackMessage.model_fields))))
        return chain

    def _provider_named(self, name: str) -> Provider:
        try:
            return self._providers.get(name)
        except ConfigError as exc:
            raise ApplicationError(str(exc), type=CONFIG_ERROR, non_retryable=True) from exc

    async def _reconcile(self, record: MessageRecord) -> SendResult | None:
        """What the provider holds under an earlier attempt's key; None: it never took it."""
        # Only a provider answer of 503/429 before the message was taken (recorded as RETRY)
        # is known not to have sent; any other unfinished claim may have reached the provider.
        if record.status is MessageStatus.SENDING and record.error_class == ErrorClass.RETRY.value:
            # The last call was refused before the provider took it (the mark is cleared before
            # every call): there is nothing to look up, and a provider that is down cannot answer.
            return None
        return await self._lookup(self._provider_named(record.provider), record.idempotency_key)

    def _message(self, req: SendRequest, profile: CustomerProfile, address: str) -> OutboundMessage:
        return compose(
            self._templates,
            self._policy,
            template=req.template,
            channel=req.channel,
            purpose=req.purpose,
            variables={**req.variables, **profile_variables(profile)},
            to=address,
            idempotency_key=req.idempotency_key,
            workflow_id=req.workflow_id,
            step=req.step,
        )

    async def _lookup(self, provider: Provider, key: str) -> SendResult | None:
        """The provider's record of ``key``, a message that may have been sent.

        Raises:
            ApplicationError: ``SendOutcomeUnknown``: the provider cannot answer (the step must not
                fall back).
        """
        try:
            return await provider.lookup(key)
        except ProviderUnavailable as exc:
            raise ApplicationError(str(exc), type=OUTCOME_UNKNOWN) from exc

    async def _finish(self, req: SendRequest, key: str, provider: Provider, result: SendResult) -> SendOutcome:
        accepted = result.status is SendStatus.ACCEPTED
        await self._store.finish_message(
            key,
            MessageStatus.ACCEPTED if accepted else MessageStatus.REJECTED,
            provider_message_id=result.provider_message_id,
            receipt_mode=result.receipt.value,
            error_class=result.error_class.value if result.error_class else None,
            error_code=result.error_code,
            error_message=result.error_message,
        )
        return SendOutcome(
            status=OutcomeStatus.ACCEPTED if accepted else OutcomeStatus.REJECTED,
            channel=req.channel,
            idempotency_key=key,
            provider=provider.name,
            provider_message_id=result.provider_message_id,
            receipt=result.receipt,
            error_class=result.error_class,
            error_code=result.error_code,
        )
