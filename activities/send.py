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

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_journeys.activities.compose import channel_address, effective_purpose
from durable_journeys.activities.consent_activities import ConsentActivities
from durable_journeys.activities.contracts import (
    CONFIG_ERROR,
    SEND_MESSAGE,
    SEND_QUEUES,
    STORE_UNAVAILABLE,
    UNKNOWN_CUSTOMER,
    WRONG_QUEUE,
    OutcomeStatus,
    SendOutcome,
    SendRequest,
)
from durable_journeys.activities.experiments import ExperimentActivities
from durable_journeys.activities.metrics import DEFERRED, FALLBACKS, RESENDS, SENDS, SKIPPED, label
from durable_journeys.activities.policy import PolicyConfig, check
from durable_journeys.activities.provider_calls import (
    ProviderCalls,
    failover_key,
    from_record,
    gateway_of,
    handed_off,
    log_outcome,
)
from durable_journeys.activities.store import MessageStatus, Store
from durable_journeys.activities.templates import TemplateRegistry
from durable_journeys.providers import (
    Channel,
    ConfigError,
    ErrorClass,
    ProviderRegistry,
    ReceiptMode,
)

log = structlog.get_logger("activities.send")


class SendActivities(ProviderCalls, ConsentActivities, ExperimentActivities):
    """Activities that send messages; built by ``worker.py`` from the store and providers.

    Args:
        store: customers and the message log.
        providers: which provider sends on which channel.
        templates: the template registry.
        policy: contact-policy settings.
        send_queues: provider name -> the task queue its sends run on (rate-limited providers only).
        failover_after: attempts a provider may stay unavailable before the channel's next provider
            takes the message (when the channel has one).
        receipt_grace: seconds a send of an engine-3 journey waits for its receipt before the
            webhook app signals it instead (0: only a receipt that came before the answer).
    """

    def __init__(
        self,
        store: Store,
        providers: ProviderRegistry,
        templates: TemplateRegistry,
        policy: PolicyConfig | None = None,
        send_queues: Mapping[str, str] | None = None,
        failover_after: int = 3,
        receipt_grace: float = 0.0,
    ) -> None:
        self._store = store
        self._providers = providers
        self._templates = templates
        self._policy = policy or PolicyConfig()
        self._send_queues = dict(send_queues or {})
        self._failover_after = failover_after
        self._receipt_grace = receipt_grace

    @property
    def policy(self) -> PolicyConfig:
        """The contact policy every send obeys."""
        return self._policy

    @policy.setter
    def policy(self, policy: PolicyConfig) -> None:
        self._policy = policy

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

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, req: SendRequest) -> SendOutcome:
        """Send one journey message at most once.

        Raises:
            ApplicationError: ``ProviderUnavailable``/``SendOutcomeUnknown``/``StoreUnavailable``
                (retryable) or ``ConfigError`` (not retryable).
        """
        routes = await self.send_queues() if self._send_queues else {}
        queue = routes.get(req.channel)
        if queue is not None and activity.info().task_queue != queue:  # a run that has not been told the routes
            raise ApplicationError(
                f"{req.channel.value} sends on the task queue {queue}", routes, type=WRONG_QUEUE, non_retryable=True
            )
        try:
            try:
                outcome = await self._send_message(req)
            except ApplicationError as exc:
                if not req.receipt_in_answer:
                    raise
                settled = await self._settled_by_receipt(req, exc)
                if settled is None:
                    raise
                outcome = settled
            outcome = await self._with_receipt(req, outcome)
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

    async def _with_receipt(self, req: SendRequest, outcome: SendOutcome) -> SendOutcome:
        """``outcome`` with its receipt if one comes within the receipt grace (engine 3; see take_receipt).

        The journey then neither waits for a signal nor starts a receipt timer: two billed
        actions fewer per message whose receipt comes quickly (most AlimTalk receipts do).
        """
        if not (req.receipt_in_answer and req.await_receipt) or outcome.status is not OutcomeStatus.ACCEPTED:
            return outcome
        if outcome.receipt is ReceiptMode.NONE or outcome.delivery is not None:  # none due, or settled by it
            return outcome
        held = await self._store.take_receipt(outcome.idempotency_key, grace=self._grace_left())
        return outcome if held is None else outcome.model_copy(update={"delivery": held.as_receipt()})

    async def _settled_by_receipt(self, req: SendRequest, exc: ApplicationError) -> SendOutcome | None:
        """A held send that failed: its receipt from now on is signalled; one already logged settles it.

        A receipt proves the provider took the message (its answer was lost, or an earlier
        attempt's was): the send is accepted, with the receipt in the answer.
        """
        held = await self._store.take_receipt(req.idempotency_key, grace=0)
        if held is None or exc.non_retryable:
            return None
        await self._store.finish_message(
            held.idempotency_key, MessageStatus.ACCEPTED, receipt_mode=ReceiptMode.WEBHOOK.value
        )
        accepted = held.model_copy(update={"status": MessageStatus.ACCEPTED, "receipt_mode": ReceiptMode.WEBHOOK.value})
        log.info("message.settled_by_receipt", workflow_id=req.workflow_id, step=req.step, channel=req.channel.value)
        return from_record(accepted).model_copy(
            update={"replayed": False, "reason": "settled by its receipt", "delivery": held.as_receipt()}
        )

    def _grace_left(self) -> float:
        """The receipt grace, cut to half of what is left of this attempt's timeouts.

        A grace longer than the journey's ``send_timeout`` would time out every attempt of a
        send whose receipt never comes, and retry it for ever: the attempt answers well before.
        """
        info = activity.info()
        now = datetime.now(UTC)
        grace = self._receipt_grace
        for timeout, since in (
            (info.start_to_close_timeout, info.started_time),
            (info.schedule_to_close_timeout, info.scheduled_time),
        ):
            if timeout:
                grace = min(grace, (since + timeout - now).total_seconds() / 2)
        return max(grace, 0.0)

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
            log_outcome(bound, outcome)
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
                if handed_off(record) and index + 1 < len(keys):
                    start = index + 1
                    continue
                if record.status in (MessageStatus.ACCEPTED, MessageStatus.REJECTED):
                    return done(from_record(record))
                start, existing = index, record
                found = await self._reconcile(record)
                if found is not None:
                    return done(await self._finish(req, k, self._provider_named(record.provider), found))
                break

        profile = await self._store.get_customer(req.customer_id)
        if profile is None:  # visibly wrong, not quiet: most often a process on another database
            bound.warning("message.unknown_customer", hint="is every process on the same JOURNEYS_DATABASE_URL?")
            return not_sent(UNKNOWN_CUSTOMER)
        address = channel_address(profile, req.channel)
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
            keeps_chain = index == start or gateway_of(provider) >= {f.channel for f in fallback}
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
