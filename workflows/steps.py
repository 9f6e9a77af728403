"""Reusable durable steps journeys are written from (docs/architecture.md §5).

:class:`JourneyWorkflow` is the base of every journey. It owns the signals ``receipt`` and
``event``, the query ``timeline``, and the steps:

- :meth:`JourneyWorkflow.send_with_fallback`: first channel that delivers wins, the rest are
  never sent; late receipts are recorded, never acted on.
- :meth:`JourneyWorkflow.wait_for`: an event or ``None`` on timeout; buffered, so events that
  arrive early are not lost.
- :meth:`JourneyWorkflow.delay` / :meth:`JourneyWorkflow.delay_until`: durable timers with a
  summary shown in the Temporal UI.
- :meth:`JourneyWorkflow.split`: the customer's variant of an experiment (README "Experiments").

Every wait ends early when an exit event (``exit_events``) arrives, raising :class:`JourneyExit`;
and no send starts after one arrived.

Operators steer a running journey with three validated Updates (each takes who and why, and is
recorded in the timeline): ``skip_wait`` ends the current wait now, ``exit`` ends the journey,
``resend`` sends a step again under a new idempotency key linked to the first.
"""

from __future__ import annotations

from durable_journeys.workflows.engine.attempts import CapRule
from durable_journeys.workflows.engine.core import JourneyExit
from durable_journeys.workflows.engine.intake import event_signal, receipt_signal
from durable_journeys.workflows.engine.operators import JourneyOperators

__all__ = ["CapRule", "JourneyExit", "JourneyWorkflow", "event_signal", "receipt_signal"]


class JourneyWorkflow(JourneyOperators):
    """Base of every journey workflow: signals, query and durable steps.

    Signals: events under their type's name (``order.shipped``, see :func:`event_signal`),
    receipts as ``receipt {channel} {status}`` (:func:`receipt_signal`); any other name is read
    as an event. Queries: ``timeline()``, ``waiting()``. Updates: ``skip_wait``, ``exit``,
    ``resend`` (operators; validated, recorded in the timeline).
    """
