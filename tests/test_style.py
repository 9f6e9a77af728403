"""Style is held by tools: ruff's lint (pyflakes, bugbear, import order, Google docstrings) and
format, and mypy (strict) on every module but the tests. ``.ci/run`` runs them before the tests;
they run here too so that the README's test command alone tells a contributor (configuration in
pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def ruff() -> str:
    found = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail("ruff is not installed: pip install -e '.[dev]'")
    return found


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff(args: list[str]) -> None:
    done = subprocess.run([ruff(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


def test_mypy_strict_on_every_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy"],  # the files listed in pyproject.toml
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
