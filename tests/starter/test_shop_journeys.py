"""A shop's own journey, from the guide alone: the kit, the templates, the worker and the facade take it.

The guide's example (``docs/examples``: a package ``shop`` with a journey, its template file, and
its tests written with the kit) runs here as a shop would run it.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio import workflow

from durable_journeys.activities import Channel
from durable_journeys.activities.templates import load_templates
from durable_journeys.providers import ConfigError
from durable_journeys.starter.assembly import journey_classes, journey_templates
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.testing import JourneyKit, KitSetupError
from durable_journeys.workflows import ALL_WORKFLOWS, JourneyResult, JourneySettings, JourneyWorkflow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
SHOP_TEMPLATES = EXAMPLES / "shop" / "templates"


@pytest.fixture
def shop_on_path() -> Iterator[None]:
    """The example shop importable, and its fax channel registered (its template file has a fax table)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        importlib.import_module("shop.fax")
        yield
    finally:
        sys.path.remove(str(EXAMPLES))


def test_the_guide_s_example_runs_as_a_shop_runs_it() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "5 passed" in done.stdout  # the welcome journey, and the fax channel added from outside the pack


def test_the_guide_shows_no_placeholders_and_names_its_imports() -> None:
    guide = (ROOT / "docs" / "writing-a-journey.md").read_text()
    code = "".join(block.split("```", 1)[0] for block in guide.split("```python")[1:])
    assert "..." not in code and "…" not in code
    example = (EXAMPLES / "shop" / "welcome.py").read_text() + (EXAMPLES / "test_welcome.py").read_text()
    for name in ("Channel", "Purpose", "EventType", "JourneySettings", "JourneyResult", "JourneyWorkflow"):
        assert name in example


@pytest.mark.usefixtures("shop_on_path")
def test_a_shop_s_template_files_are_added_to_the_reference_ones(tmp_path: Path) -> None:
    registry = load_templates(SHOP_TEMPLATES)
    codes = {t.code for t in registry}
    assert {"welcome_note", "welcome_coupon", "order_paid", "cart_reminder"} <= codes
    (tmp_path / "mine.toml").write_text(
        '[order_paid]\npurpose = "informational"\n[order_paid.alimtalk]\ntext = "우리 가게 문구 #{order_id}"\n'
        '[order_paid.sms]\ntext = "우리 가게 문구 #{order_id}"\n'
    )
    replaced = load_templates(tmp_path)
    assert replaced.get("order_paid").texts  # the shop's own copy replaces the reference one
    assert "우리 가게" in next(iter(replaced.get("order_paid").texts.values()))
    assert "cart_reminder" in {t.code for t in replaced}


@pytest.mark.usefixtures("shop_on_path")
def test_journeys_names_a_shop_s_journey_classes_for_the_worker_and_the_facade() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, journeys=["shop.welcome:WelcomeJourney"], templates_dir=SHOP_TEMPLATES
    )
    classes = journey_classes(settings)
    assert [c.journey for c in classes] == [*(j.journey for j in ALL_WORKFLOWS), "welcome"]
    journey_templates(settings, classes)  # every template the shop's journey sends is there
    with pytest.raises(ConfigError, match="'welcome_coupon' is used by a journey but defined in no file"):
        journey_templates(settings.model_copy(update={"templates_dir": None}), classes)


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("nowhere.module:Journey", "whose module does not import"),
        ("shop.welcome:WelcomeInput", "which is no journey"),
        ("shop.welcome:Nope", "which is no journey"),
        ("durable_journeys.workflows.win_back:WinBackJourney", None),  # a reference journey named again: no harm
    ],
)
@pytest.mark.usefixtures("shop_on_path")
def test_a_wrong_journeys_entry_is_one_line(entry: str, needle: str | None) -> None:
    settings = Settings(_env_file=None, journeys=[entry])  # type: ignore[call-arg]
    if needle is None:
        assert journey_classes(settings) == list(ALL_WORKFLOWS)
        return
    with pytest.raises(ConfigError) as refused:
        journey_classes(settings)
    assert str(refused.value).startswith(f"JOURNEYS_JOURNEYS names {entry!r}") and needle in str(refused.value)


def test_a_malformed_journeys_entry_is_refused_by_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from durable_journeys.starter.settings import load_settings

    monkeypatch.setenv("JOURNEYS_JOURNEYS", '["not a path"]')
    with pytest.raises(ConfigError, match="^JOURNEYS_JOURNEYS"):
        load_settings()


@workflow.defn(name="ShopNoTemplates")
class NoTemplatesJourney(JourneyWorkflow):
    """A shop's journey whose template file was forgotten."""

    journey = "no-templates"
    steps = {"hello": ((Channel.SMS,), "hello_missing")}

    @workflow.run
    async def run(self, customer_id: str) -> JourneyResult:
        return await self.run_story(customer_id, JourneySettings(), self._story())

    async def _story(self) -> None:
        return None  # a story that returns nothing


@workflow.defn(name="ShopQuiet")
class QuietJourney(NoTemplatesJourney):
    """The same story, with nothing to send."""

    journey = "quiet"
    steps = {}

    @workflow.run
    async def run(self, customer_id: str) -> JourneyResult:
        return await self.run_story(customer_id, JourneySettings(), self._story())


async def test_the_kit_checks_a_shop_journey_s_templates_when_its_worker_starts(journey_kit: JourneyKit) -> None:
    with pytest.raises(KitSetupError, match="'hello_missing' is used by a journey but defined in no file"):
        journey_kit.worker(NoTemplatesJourney)


async def test_a_story_that_returns_nothing_ends_completed(journey_kit: JourneyKit) -> None:
    from temporalio.worker import UnsandboxedWorkflowRunner

    async with journey_kit.worker(QuietJourney, workflow_runner=UnsandboxedWorkflowRunner()):
        handle = await journey_kit.start(QuietJourney, "c-quiet-1")
        result: JourneyResult = await handle.result()
    assert result.outcome == "completed" and result.timeline[-1].detail == "completed"
