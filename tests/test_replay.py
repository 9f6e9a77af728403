"""Every saved history replays against today's workflow code (tests/histories/*.json).

A change to a journey's command sequence that is not behind ``workflow.patched()`` makes the
replay of an older history fail here, before it would fail journeys already running.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from durable_journeys.workflows import ALL_WORKFLOWS
from tests.histories.regenerate import SCENARIOS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
BASELINE = "1.0"  # the versioning baseline: every scenario has a history recorded by 1.0
LATER = {"cart_experiment": "1.3", "post_purchase_late": "1.4"}  # scenarios a later release brought, with the release


def test_every_scenario_has_a_history_of_the_baseline() -> None:
    """Every scenario has a history from the baseline, or from the release that brought it (``LATER``)."""
    recorded = {p.stem.rsplit("-", 1)[0] for p in HISTORIES if p.stem.endswith(f"-{BASELINE}")}
    assert recorded == set(SCENARIOS) - set(LATER)
    for name, version in LATER.items():
        assert (HISTORIES[0].parent / f"{name}-{version}.json") in HISTORIES
    workflow_types = {
        json.loads(p.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]
        for p in HISTORIES
    }
    assert workflow_types == {w.__temporal_workflow_definition.name for w in ALL_WORKFLOWS}  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path: Path) -> None:
    raw = json.loads(path.read_text())
    workflow_id = path.stem  # the id is not used by replay beyond reporting
    history = WorkflowHistory.from_json(workflow_id, raw)
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
