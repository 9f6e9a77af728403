"""Waiting: durable timers, events and receipts, each cut short by an exit or an operator's skip.

From engine generation 4 a run's waits share their timers (:class:`Alarm`): a wait that an event
can end early takes a timer already running that fires no later than its own deadline instead of
starting one (when that timer fires before the deadline, a timer for the rest is started then).
Each started timer is a billed action; a timer that a wait no longer needs is left running, not
cancelled, because a later wait may take it. Deadlines are kept exactly as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from datetime import datetime, time, timedelta

from temporalio import workflow

from durable_journeys.activities.contracts import (
    KST,
    DeliveryReceipt,
)

# Only the metrics counter (a side effect outside replay, never a command) comes through the
# sandbox unchecked: activities are scheduled by name (activities/contracts.py).
with workflow.unsafe.imports_passed_through():
    pass

from durable_journeys.workflows.engine.core import SKIP_TIMER, Alarm
from durable_journeys.workflows.engine.intake import JourneyIntake
from durable_journeys.workflows.models import (
    EventType,
    JourneyEvent,
)

MAX_ALARMS = 4  # timers a run keeps running for later waits; past this the latest is cancelled


class JourneyWaiting(JourneyIntake):
    """The waits a journey's story is made of (``wait_for``, ``wait_until``, ``delay`` ...)."""

    async def wait_for(
        self,
        event_types: Collection[EventType],
        timeout: timedelta,
        *,
        summary: str | None = None,
        on_timeout: str | None = None,
    ) -> JourneyEvent | None:
        """The first not-yet-consumed event of ``event_types``, or ``None`` after ``timeout``.

        ``on_timeout`` says what the story does when no event comes (an operator's skip of the
        wait does the same, and ``journeys skip`` says so before acting).

        Raises:
            JourneyExit: an exit event arrived.
        """
        wanted = frozenset(event_types)

        def match() -> int | None:
            for i, event in enumerate(self._events):
                if i not in self._consumed and event.type in wanted:
                    return i
            return None

        self._waiting_for = wanted
        try:
            if not await self.wait_until(
                lambda: match() is not None,
                timeout,
                summary=summary or f"wait for {', '.join(sorted(wanted))}",
                on_timeout=on_timeout or f"the journey goes on as if no {', '.join(sorted(wanted))} came",
            ):
                return None
        finally:
            self._waiting_for = frozenset()
        index = match()
        assert index is not None
        self._consumed.add(index)
        return self._events[index]

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: timedelta, *, summary: str, on_timeout: str | None = None
    ) -> bool:
        """Wait for ``predicate`` at most ``timeout``; False on timeout (``on_timeout``: what the story does then).

        Raises:
            JourneyExit: an exit event arrived.
        """
        return await self._wait(predicate, timeout, summary=summary, on_timeout=on_timeout, early=True)

    async def _wait(
        self,
        predicate: Callable[[], bool],
        timeout: timedelta,
        *,
        summary: str,
        on_timeout: str | None,
        early: bool,
    ) -> bool:
        """``wait_until``; ``early``: whether anything but the timer usually ends the wait (an event)."""
        if timeout <= timedelta(0):
            self._raise_if_exited()
            return predicate()
        if not self._exiting() and not predicate():
            self._publish_stage()
        self._waiting, self._skip, self._skipped = summary, False, False
        self._on_skip = on_timeout or SKIP_TIMER
        try:
            ended = lambda: self._exiting() or self._skip or predicate()  # noqa: E731
            if self.engine >= 4:
                came = await self._until(ended, workflow.now() + timeout, summary, early=early)
            else:
                try:
                    await workflow.wait_condition(ended, timeout=timeout, timeout_summary=summary)
                    came = True
                except TimeoutError:
                    came = False
        finally:
            self._waiting = None
        self._raise_if_exited()
        if not came:
            return False
        if self._skip and not predicate():  # an operator's skip_wait: as if the wait had run out
            self._skip, self._skipped = False, True
            return False
        return True

    def has_event(self, event_types: Collection[EventType]) -> bool:
        """Whether an event of ``event_types`` has arrived in this run."""
        return any(e.type in event_types for e in self._events)

    async def delay(self, duration: timedelta, *, summary: str) -> None:
        """A durable timer that an exit event cuts short.

        Raises:
            JourneyExit: an exit event arrived.
        """
        await self._wait(lambda: False, duration, summary=summary, on_timeout=None, early=False)

    async def _until(self, ended: Callable[[], bool], deadline: datetime, summary: str, *, early: bool) -> bool:
        """Wait until ``ended()`` (True) or journey time ``deadline`` (False), on the run's shared timers."""
        while not ended():
            if workflow.now() >= deadline:
                return False
            alarm = self._alarm(deadline, summary, early=early)
            await workflow.wait_condition(lambda: ended() or alarm.task.done())  # noqa: B023 (awaited here)
        return True

    def _alarm(self, deadline: datetime, summary: str, *, early: bool) -> Alarm:
        """A running timer to wait on for ``deadline``: one that fires then (or, if ``early``, before), or a new one.

        A timer that fires before the deadline saves one only if the wait ends first, so a plain
        delay (``early`` False) takes only a timer that fires at its deadline.
        """
        alarms = [a for a in self._alarms if not a.task.done()]
        usable = [a for a in alarms if a.at == deadline or (early and a.at < deadline)]
        if usable:
            self._alarms = alarms
            return max(usable, key=lambda a: a.at)
        if len(alarms) >= MAX_ALARMS:
            latest = max(alarms, key=lambda a: a.at)
            latest.task.cancel()
            alarms.remove(latest)
        task = asyncio.create_task(workflow.sleep(deadline - workflow.now(), summary=summary))
        alarm = Alarm(deadline, task)
        self._alarms = [*alarms, alarm]
        return alarm

    async def delay_until(self, when: datetime, *, summary: str) -> None:
        """Wait until ``when`` in journey time (no wait if it has passed)."""
        await self.delay(when - workflow.now(), summary=summary)

    async def delay_until_local_hours(self, start: time, end: time, *, summary: str) -> None:
        """Wait, if needed, until the customer's local (KST) clock is within ``[start, end)``.

        Raises:
            JourneyExit: an exit event arrived.
        """
        local = workflow.now().astimezone(KST)
        if start <= local.time() < end:
            return
        opening = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
        if opening <= local:
            opening += timedelta(days=1)
        await self.delay_until(opening, summary=summary)

    async def _await_receipt(self, key: str, timeout: timedelta) -> DeliveryReceipt | None:
        summary = f"receipt for {key.rsplit(':', 2)[-2]}"
        self._waiting, self._skip, self._skipped = summary, False, False
        self._on_skip = "the step moves on to its next channel, if it has one"
        try:
            await workflow.wait_condition(
                lambda: key in self._receipts or self._exiting() or self._skip,
                timeout=timeout,
                timeout_summary=summary,
            )
        except TimeoutError:
            return None
        finally:
            self._waiting = None
        if key not in self._receipts and self._skip and not self._exiting():
            self._skip, self._skipped = False, True
            return None
        if key in self._receipts:
            return self._receipts[key]
        self._raise_if_exited()
        return None
