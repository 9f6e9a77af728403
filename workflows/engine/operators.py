"""Operators' controls: the validated, audited Updates ``skip_wait``, ``exit`` and ``resend``."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from durable_journeys.activities.contracts import (
    KST,
    Channel,
    OutcomeStatus,
    ReceiptMode,
)

# Only the metrics counter (a side effect outside replay, never a command) comes through the
# sandbox unchecked: activities are scheduled by name (activities/contracts.py).
with workflow.unsafe.imports_passed_through():
    pass

from durable_journeys.activities.masking import mask
from durable_journeys.workflows.engine.attempts import SEND_ROUND, _failure_type
from durable_journeys.workflows.engine.core import SKIP_TIMER
from durable_journeys.workflows.engine.splits import JourneySplits
from durable_journeys.workflows.models import (
    JourneyEvent,
    OperatorAction,
    Outcome,
    ResendAction,
    SkipAction,
)


class JourneyOperators(JourneySplits):
    """Operators steer a running journey; each action takes who and why and is kept in the timeline."""

    # operators' updates -----------------------------------------------------------------------

    @workflow.update(name="skip_wait")
    def skip_wait(self, action: SkipAction) -> str:
        """End the wait the journey is in now (a timer, an event, a receipt) as if it had run out.

        With ``action.as_event``, as if that event (one the wait is for) had come instead.
        """
        try:
            self._note_operator("skip_wait", action)
            waiting = self._waiting or "wait"
            if action.as_event is not None:
                self._take_event(
                    JourneyEvent(
                        type=action.as_event,
                        event_id=f"operator:{action.as_event.value}:{len(self.state.timeline)}",
                        received_at=workflow.now(),
                    )
                )
                effect = f"as if {action.as_event.value} came"
            else:
                self._skip = True
                effect = self._on_skip or SKIP_TIMER
            self._record(
                "operator",
                Outcome.OPERATOR,
                None,
                f"skip_wait by {action.operator}: {action.reason} ({waiting}: {effect})",
            )
            return f"skipped: {waiting}: {effect}"
        except Exception as exc:  # noqa: BLE001 - a failure of this call, never of the workflow task
            raise _update_failed("skip_wait", exc) from None

    @skip_wait.validator
    def _check_skip_wait(self, action: SkipAction) -> None:
        self._check_operable(action)
        if self._waiting is None:
            raise ApplicationError("the journey is not waiting now (it is sending); try again in a moment")
        if self._skip:
            raise ApplicationError(f"a skip of this wait ({self._waiting}) is already under way")
        as_event = getattr(action, "as_event", None)  # an older client's OperatorAction has none
        if as_event is not None and as_event not in self._waiting_for:
            waits = ", ".join(sorted(self._waiting_for)) or "no event"
            raise ApplicationError(f"{self._waiting} waits for {waits}, not {as_event.value}")

    @workflow.update(name="exit")
    def exit_journey(self, action: OperatorAction) -> str:
        """End the journey: no more sends; a send already with the provider is not recalled."""
        try:
            self._note_operator("exit", action)
            self._operator_exit = action
            self._record("operator", Outcome.OPERATOR, None, f"exit by {action.operator}: {action.reason}")
            return "exiting: no more messages will be sent"
        except Exception as exc:  # noqa: BLE001 - a failure of this call, never of the workflow task
            raise _update_failed("exit", exc) from None

    @exit_journey.validator
    def _check_exit(self, action: OperatorAction) -> None:
        self._check_operable(action)

    @workflow.update(name="resend")
    async def resend(self, action: ResendAction) -> str:
        """Send a step again (on ``action.channel`` or the channel it went out on), under a new key.

        The resend obeys consent, opt-out, quiet hours and the frequency caps (an ad resent counts
        like any ad), not the duplicate-content window (an operator chose to send it again). A
        step is resent at most ``max_resends_per_step`` times. Its key links to the first message
        in the log. Returns what happened, in one line.
        """
        try:
            return await self._resend(action)
        except ApplicationError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failure of this call, never of the workflow task
            raise _update_failed("resend", exc) from None

    async def _resend(self, action: ResendAction) -> str:
        self._note_operator("resend", action)
        sent = self.state.sent_steps[action.step]
        template, variables, purpose, keys = sent.template, sent.variables, sent.purpose, sent.keys
        channel = action.channel or self._sent_channel(action.step)
        number = self.state.resends[action.step] = self.state.resends.get(action.step, 0) + 1
        self._record(action.step, Outcome.OPERATOR, channel, f"resend by {action.operator}: {action.reason}")
        request = self._request(action.step, channel, template, variables, purpose, resend=number, resend_of=keys[-1])
        try:
            outcome = await self._execute_send(
                request, schedule_to_close=SEND_ROUND, summary=f"{action.step} via {channel.value} (resend)"
            )
        except ActivityError as err:
            failure = _failure_type(err)
            self._record(action.step, Outcome.FAILED, channel, f"resend: {failure}")
            return f"not sent: {failure}"
        if outcome.status is OutcomeStatus.ACCEPTED:
            if outcome.receipt is ReceiptMode.NONE:
                self._record(action.step, Outcome.DELIVERED, channel, "resend; no receipt expected")
                return f"resent on {channel.value}"
            self._record(action.step, Outcome.SENT, channel, "resend")
            self._track_receipt(self._resend_keys, outcome.idempotency_key, action.step)
            return f"resent on {channel.value}; its receipt will show in the timeline"
        self._record_not_sent(action.step, channel, outcome)
        when = f" until {outcome.not_before.astimezone(KST):%Y-%m-%d %H:%M} KST" if outcome.not_before else ""
        return f"not sent: {outcome.status.value} {outcome.reason or outcome.error_code or ''}{when}".rstrip()

    @resend.validator
    def _check_resend(self, action: ResendAction) -> None:
        self._check_operable(action)
        if action.step not in self.state.sent_steps:
            went = ", ".join(sorted(self.state.sent_steps)) or "none yet"
            raise ApplicationError(f"step {action.step!r} was never sent in this run (sent: {went})")
        limit = self._settings.max_resends_per_step
        if self.state.resends.get(action.step, 0) >= limit:
            raise ApplicationError(
                f"step {action.step!r} was resent {limit} times already, the most a step may be (max_resends_per_step)"
            )
        if action.channel is not None:
            declared = self.steps.get(action.step, ((), ""))[0]
            allowed = {*declared, self._sent_channel(action.step)}
            if action.channel not in allowed:
                names = ", ".join(sorted(c.value for c in allowed))
                raise ApplicationError(f"step {action.step!r} is not sent on {action.channel.value} (use {names})")

    def _check_operable(self, action: OperatorAction) -> None:
        """Reject an operator's action on a journey that has ended or is exiting, or that carries personal data.

        An Update's input stays in history once accepted: a phone number or an e-mail address
        typed into who or why is refused here (the facade and the CLI mask them before sending).
        """
        for field, value in (("operator", action.operator), ("reason", action.reason)):
            if mask(value) != value:
                raise ApplicationError(
                    f"the {field} holds a phone number or an e-mail address; leave it out (history keeps it)"
                )
        if self._ended:
            raise ApplicationError("the journey has ended")
        if self._operator_exit is not None:
            raise ApplicationError(f"the journey is exiting (by {self._operator_exit.operator})")
        if self._exit is not None:
            raise ApplicationError(f"the journey is ending ({self._exit.type.value})")

    def _note_operator(self, update: str, action: OperatorAction) -> None:
        """Log an accepted operator's action (who and what; the reason is in the timeline) before it acts."""
        workflow.logger.info("%s on %s by %s", update, self.journey, action.operator)

    def _sent_channel(self, step: str) -> Channel:
        """The channel ``step`` last went out on."""
        for entry in reversed(self.state.timeline):
            if entry.step == step and entry.channel is not None and entry.outcome in (Outcome.SENT, Outcome.DELIVERED):
                return entry.channel
        key = self.state.sent_steps[step].keys[-1]
        return Channel(key.rsplit(":", 1)[-1])


def _update_failed(update: str, exc: Exception) -> ApplicationError:
    """An error inside an Update handler as a failure of that call (never of the workflow task)."""
    return ApplicationError(f"{update} failed: {type(exc).__name__}", non_retryable=True)
