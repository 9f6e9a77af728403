"""A journey that declares how it starts: the facade's emit (so POST /events and the kit) starts it.

The journey says which events start it (``starts_on``), the input it makes of one
(``start_input``, None: not this one), its key, and whether an ended run may start again
(``once_per_key``); no facade code is written for it.
"""

from __future__ import annotations

import pytest

from durable_journeys.activities import Channel
from durable_journeys.starter.testing import JourneyKit, Recipients
from durable_journeys.workflows import JourneyResult
from tests.starter.app_tips import AppTipsJourney, GoodbyeJourney


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
