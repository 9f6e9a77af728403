"""A journey that declares how it starts: the facade's emit (so POST /events and the kit) starts it.

The journey says which events start it (``starts_on``), the input it makes of one
(``start_input``, None: not this one), its key, and whether an ended run may start again
(``once_per_key``); no facade code is written for it.
"""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowExecutionStatus

from durable_journeys.activities import Channel
from durable_journeys.starter.testing import JourneyKit, Recipients
from durable_journeys.workflows import JOURNEY_STAGE, JourneyResult, JourneyState
from tests.starter.app_tips import AppTipsJourney, GoodbyeJourney, TipsSettings


def customer(customer_id: str) -> dict[str, object]:
    return {"customer_id": customer_id, "name": "하늘", "phone": Recipients.DELIVERS}


async def test_the_event_a_journey_starts_on_starts_it_once(journey_kit: JourneyKit) -> None:
    await journey_kit.set_profile(customer("c-tips-1"))
    async with journey_kit.worker(AppTipsJourney):
        assert await journey_kit.emit("c-tips-1", {"type": "app.installed"}) == 1
        handle = journey_kit.client.get_workflow_handle("app-tips:c-tips-1", result_type=JourneyResult)
        result: JourneyResult = await handle.result()
        assert result.outcome == "guided"
        # ended, and once per customer: a reinstall starts no second guide
        assert await journey_kit.emit("c-tips-1", {"type": "app.installed"}) == 0
    sent = await journey_kit.sent(customer_id="c-tips-1")
    assert [(m.workflow_id, m.step, m.channel) for m in sent] == [("app-tips:c-tips-1", "guide", Channel.IN_APP)]


@pytest.mark.parametrize(
    ("customer_id", "event"),
    [
        ("staff-1", {"type": "app.installed"}),  # start_input says no
        ("c-tips-2", {"type": "app.opened"}),  # not an event it starts on
    ],
)
async def test_other_events_start_nothing(journey_kit: JourneyKit, customer_id: str, event: dict[str, str]) -> None:
    await journey_kit.set_profile(customer(customer_id))
    async with journey_kit.worker(AppTipsJourney):
        assert await journey_kit.emit(customer_id, event) == 0
    assert await journey_kit.journeys._status(f"app-tips:{customer_id}") is None
    assert await journey_kit.sent(customer_id=customer_id) == []


async def test_an_event_the_facade_handles_itself_still_starts_a_journey_declared_on_it(
    journey_kit: JourneyKit,
) -> None:
    """``unsubscribed`` updates the profile first; a journey that starts on it is started all the same."""
    await journey_kit.set_profile(customer("c-bye-1"))
    async with journey_kit.worker(GoodbyeJourney):
        assert await journey_kit.emit("c-bye-1", {"type": "unsubscribed"}) == 1
        handle = journey_kit.client.get_workflow_handle("goodbye:c-bye-1", result_type=JourneyResult)
        assert (await handle.result()).outcome == "guided"
    stored = await journey_kit.stack.store.get_customer("c-bye-1")
    assert stored is not None and stored.unsubscribed
    sent = await journey_kit.sent(customer_id="c-bye-1")
    assert [(m.workflow_id, m.channel) for m in sent] == [("goodbye:c-bye-1", Channel.IN_APP)]


async def test_a_journey_starts_with_the_settings_the_facade_holds_for_it_and_shows_its_start(
    journey_kit: JourneyKit,
) -> None:
    await journey_kit.set_profile(customer("c-tips-3"))
    journey_kit.journeys.journey_settings[AppTipsJourney] = TipsSettings(tutorial_url="https://shop.example/tips")
    try:
        async with journey_kit.worker(AppTipsJourney):
            assert await journey_kit.emit("c-tips-3", {"type": "app.installed"}) == 1
            handle = journey_kit.client.get_workflow_handle("app-tips:c-tips-3", result_type=JourneyResult)
            desc = await handle.describe()
            await handle.result()
            state = await handle.query("state", result_type=JourneyState)
    finally:
        del journey_kit.journeys.journey_settings[AppTipsJourney]
    assert state.sent_steps["guide"].variables["tutorial_url"] == "https://shop.example/tips"
    assert await desc.static_summary() == "App tips"
    assert desc.typed_search_attributes[JOURNEY_STAGE] in ("guide_due", "guide", "guided")


@pytest.mark.parametrize(
    ("event", "workflow_id", "stage"),
    [
        ({"type": "customer.active"}, "win-back:c-ref-1", "waiting_until_dormant"),
        (
            {"type": "cart.updated", "data": {"cart": {"items": [{"name": "케이스", "unit_price": 9000}]}}},
            "cart:c-ref-1",
            "browsing",
        ),
    ],
)
async def test_the_reference_journeys_start_on_their_events_through_emit_and_a_second_event_feeds_the_same_run(
    journey_kit: JourneyKit, event: dict[str, object], workflow_id: str, stage: str
) -> None:
    """``POST /events`` with ``customer.active`` or ``cart.updated`` starts the journey as its convenience does."""
    await journey_kit.set_profile(customer("c-ref-1"))
    async with journey_kit.worker():
        assert await journey_kit.emit("c-ref-1", event) == 1
        handle = journey_kit.client.get_workflow_handle(workflow_id)
        first = await handle.describe()
        assert await journey_kit.emit("c-ref-1", event) == 1  # signal-with-start: the run going on gets it
        second = await handle.describe()
        state = await handle.query("state", result_type=JourneyState)
        await journey_kit.emit("c-ref-1", {"type": "purchase"})  # ends both kinds
    assert first.run_id == second.run_id and first.status is WorkflowExecutionStatus.RUNNING
    assert first.typed_search_attributes[JOURNEY_STAGE] == stage
    assert [e.step for e in state.timeline].count(str(event["type"])) == 2
