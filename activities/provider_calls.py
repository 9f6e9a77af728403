"""One message through a channel's providers: the claim in the log, the call, reconciling, failover, gateway fallback.

``SendActivities`` (``activities/send.py``) decides whether and what to send; this is how it goes out.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_journeys.activities.compose import channel_address, compose, content_key
from durable_journeys.activities.contracts import (
    CONFIG_ERROR,
    OUTCOME_UNKNOWN,
    PROVIDER_UNAVAILABLE,
    OutcomeStatus,
    SendOutcome,
    SendRequest,
)
from durable_journeys.activities.customers import CustomerProfile
from durable_journeys.activities.policy import PolicyConfig, check
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
    ReceiptMode,
    SendResult,
    SendStatus,
)

log = structlog.get_logger("activities.send")


def gateway_of(provider: Provider) -> frozenset[Channel]:
    """The channels ``provider`` can chain itself (none for a provider without gateway fallback)."""
    return provider.gateway_channels if isinstance(provider, GatewayFallbackProvider) else frozenset()


def log_outcome(bound: Any, outcome: SendOutcome) -> None:
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


def handed_off(record: MessageRecord) -> bool:
    """Whether this provider gave the message up for the next one (it was refused or unavailable, never sent)."""
    return record.status is MessageStatus.REJECTED and record.error_class in (
        ErrorClass.CONFIG.value,
        ErrorClass.RETRY.value,
    )


def from_record(record: MessageRecord) -> SendOutcome:
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


def retry_delay(retry_after: timedelta | None) -> timedelta | None:
    """The provider's Retry-After, but never faster than exponential backoff.

    Backoff is 1 s doubling to 1 min: a provider that says "1 s" through a day-long outage is not
    called 86,400 times.
    """
    if retry_after is None:
        return None
    backoff = timedelta(seconds=min(2 ** (activity.info().attempt - 1), 60))
    return max(retry_after, backoff)


class ProviderCalls:
    """The provider-facing half of the send activity (see ``SendActivities``)."""

    _store: Store
    _providers: ProviderRegistry
    _templates: TemplateRegistry
    _policy: PolicyConfig
    _failover_after: int

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
            if handed_off(record) and hand_off:
                return None
            if record.status in (MessageStatus.ACCEPTED, MessageStatus.REJECTED):
                return from_record(record)
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
                next_retry_delay=retry_delay(result.retry_after),
            )
        outcome = await self._finish(req, key, provider, result)
        if result.error_class is ErrorClass.RECIPIENT_DEAD:
            await self._store.mark_address_dead(req.customer_id, address)
        if result.error_class is ErrorClass.CONFIG:
            if hand_off:
                bound.error("message.provider_config_error", provider=provider.name, error_code=result.error_code)
                return None
            log_outcome(bound, outcome)
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
            receipt_awaited=req.await_receipt and not req.receipt_in_answer,  # held: see take_receipt
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
            experiment=req.experiment,
            variant=req.variant,
            message_type=msg.sms_kind.value.lower() if msg.sms_kind is not None else req.channel.value,
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
            if channel not in gateway_of(provider) or self._providers.route_of(channel) != provider.name:
                continue
            if channel_address(profile, channel) != address:
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
