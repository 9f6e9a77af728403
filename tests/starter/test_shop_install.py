"""The built package in a shop's own virtualenv: its pytest runs with the plugin, with and without the kit's extra.

The package is built into a wheel and installed (``--no-deps``) into a fresh virtualenv; its
dependencies come from this environment's site-packages, minus what the ``testing`` extra brings
(pytest-asyncio, the time-skipping server) unless the case asks for it. The shop has its own
``worker.py`` and ``workflows/`` package, as every Temporal sample does: the pack lives under
``durable_journeys`` and neither shadows the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTRA = ("pytest_asyncio", "temporal_test_server")  # top-level names the testing extra brings
OURS = ("durable_journeys", "__editable__", "_durable_journeys")

PLAIN_TEST = """
def test_the_shop_s_own_arithmetic():
    assert 1 + 1 == 2
"""
KIT_TEST = """
from datetime import timedelta

from durable_journeys.starter.testing import JourneyKit, Recipients


async def test_a_payment_message_goes_out(journey_kit: JourneyKit) -> None:
    c = {"customer_id": "c-shop-1", "name": "하늘", "phone": Recipients.DELIVERS}
    order = {"order_id": "o-shop-1", "customer_id": "c-shop-1", "amount": 1000, "items": [{"name": "a", "unit_price": 1000}]}
    async with journey_kit.worker():
        handle = await journey_kit.journeys.order_paid(order, c)
        await journey_kit.advance(timedelta(hours=1))
        sent = await journey_kit.sent(workflow_id=handle.id)
    assert [(m.step, m.channel.value) for m in sent] == [("payment_complete", "alimtalk")]
"""
SHOP_WORKER = """
from workflows import ShopGreeting

SETTINGS = "the shop's own worker settings"


def main() -> str:
    return ShopGreeting.__name__
"""
SHOP_WORKFLOWS = """
class ShopGreeting:
    pass
"""
SHOP_STARTER = """
raise ImportError("the shop's own starter.py: the pack must never import it")
"""
BESIDE_TEST = """
import durable_journeys.worker
import durable_journeys.workflows
import worker
import workflows
from durable_journeys.starter import Journeys


def test_the_shop_s_modules_and_the_pack_s_live_side_by_side() -> None:
    assert worker.main() == "ShopGreeting" and worker.SETTINGS.startswith("the shop")
    assert workflows.ShopGreeting is not None
    assert durable_journeys.worker.run_worker is not None and durable_journeys.workflows.JourneyWorkflow is not None
    assert Journeys.__module__.startswith("durable_journeys.")
"""
# The README's "Using it from your app" snippet, run against the kit's server, store and task queue.
README_TEST = """
import re
from datetime import timedelta
from pathlib import Path

from durable_journeys.starter.testing import JourneyKit

SNIPPET = Path(__file__).with_name("readme_snippet.py").read_text()


async def test_the_readme_snippet_runs_in_the_shop(journey_kit: JourneyKit, monkeypatch, capsys) -> None:
    target = journey_kit.env.client.service_client.config.target_host
    monkeypatch.setenv("JOURNEYS_TEMPORAL_ADDRESS", target)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", str(journey_kit.stack.store.engine.url))
    monkeypatch.setenv("JOURNEYS_TASK_QUEUE", journey_kit.stack.task_queue)
    code = SNIPPET.replace("asyncio.run(main())", "")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    async with journey_kit.worker():
        await scope["main"]()
        # The journeys it started are still sending (the care journey's welcome, the last
        # receipts): leave the worker only once they are done, or the server's clock waits for them.
        await journey_kit.advance(timedelta(minutes=1))
        timeline = await journey_kit.timeline("post-purchase:A-1001")
    out = [line for line in capsys.readouterr().out.splitlines() if line and not re.match(r"[\\x1b0-9]", line)]  # no log lines
    assert out == ["post-purchase:A-1001", "delivered"]
    # The cancel may reach the journey before or after its first send: either way it ended the
    # journey, and what it sent before is the story's start, in order.
    sent = list(dict.fromkeys(e.step for e in timeline if e.channel is not None))  # a send, its receipt
    assert sent == ["payment_complete", "shipping_started"][: len(sent)]
    assert (timeline[-1].step, timeline[-1].detail) == ("journey", "ended by order.cancelled")
"""
PYPROJECT = """
[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "session"
asyncio_default_test_loop_scope = "session"
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("durable_journeys-*.whl")
    return built


@pytest.fixture(scope="module")
def plain_python(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """The shop's virtualenv without the testing extra (shared by the tests that need no kit)."""
    return shop_env(tmp_path_factory.mktemp("plain"), wheel, extra=False)


def shop_env(tmp: Path, wheel: Path, *, extra: bool) -> Path:
    """A fresh virtualenv with the wheel installed, its dependencies taken from this environment."""
    target = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(target)  # this environment's pip installs into it
    python = target / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    here = Path(next(p for p in sys.path if p.endswith("site-packages")))
    farm = tmp / "deps"
    farm.mkdir()
    for entry in here.iterdir():
        name = entry.name
        if name.startswith(OURS) or name.endswith(".pth") or (not extra and name.startswith(EXTRA)):
            continue
        (farm / name).symlink_to(entry)
    (
        target / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "deps.pth"
    ).write_text(f"import site; site.addsitedir({str(farm)!r})\n")
    binaries = ["temporal", *(["temporal-test-server"] if extra else [])]
    for binary in binaries:
        (target / "bin" / binary).symlink_to(Path(sys.executable).parent / binary)
    return python


def readme_snippet() -> str:
    """The README's first Python block ("Using it from your app")."""
    text = (ROOT / "README.md").read_text()
    return text.split("```python\n", 1)[1].split("```", 1)[0]


def shop(tmp: Path) -> Path:
    """A shop's project: its own ``worker.py``, ``workflows/`` and ``starter.py``, and tests of the pack."""
    project = tmp / "shop"
    (project / "tests").mkdir(parents=True)
    (project / "workflows").mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT + 'pythonpath = ["."]\n')
    (project / "worker.py").write_text(textwrap.dedent(SHOP_WORKER))
    (project / "starter.py").write_text(textwrap.dedent(SHOP_STARTER))
    (project / "workflows" / "__init__.py").write_text(textwrap.dedent(SHOP_WORKFLOWS))
    (project / "tests" / "test_plain.py").write_text(textwrap.dedent(PLAIN_TEST))
    (project / "tests" / "test_journeys.py").write_text(textwrap.dedent(KIT_TEST))
    (project / "tests" / "test_beside.py").write_text(textwrap.dedent(BESIDE_TEST))
    (project / "tests" / "test_readme.py").write_text(textwrap.dedent(README_TEST))
    (project / "tests" / "readme_snippet.py").write_text(readme_snippet())
    return project


def pytest_in(python: Path, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOURNEYS_", "PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_the_testing_extra_a_shop_s_tests_run_and_the_kit_says_what_to_install(
    tmp_path: Path, plain_python: Path
) -> None:
    python, project = plain_python, shop(tmp_path)
    plain = pytest_in(python, project, "tests/test_plain.py", "tests/test_beside.py")
    kit = pytest_in(python, project, "tests/test_journeys.py")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "2 passed" in plain.stdout
    assert kit.returncode != 0
    assert "pip install 'durable-journeys[testing]'" in kit.stdout and "pip install -e" not in kit.stdout
    assert "Traceback" not in kit.stdout + kit.stderr


def test_with_the_testing_extra_the_kit_runs_a_journey_in_the_shop_s_tests(tmp_path: Path, wheel: Path) -> None:
    python, project = shop_env(tmp_path, wheel, extra=True), shop(tmp_path)
    run = pytest_in(python, project)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "4 passed" in run.stdout


def test_the_console_script_and_the_module_run_from_inside_the_shop(tmp_path: Path, plain_python: Path) -> None:
    """``journeys --help`` and ``python -m durable_journeys.starter.cli``, the shop's folder first on sys.path."""
    python, project = plain_python, shop(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOURNEYS_", "PYTHON", "VIRTUAL_ENV"))}
    for command in (
        [str(python.parent / "journeys"), "--help"],
        [str(python), "-m", "durable_journeys.starter.cli", "--help"],
    ):
        run = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "demo" in run.stdout and "worker" in run.stdout and "Traceback" not in run.stderr
