"""The ``journeys`` command line (commands that need no server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from starter.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_journeys_bench_runs_the_benchmark_from_the_source_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], Path]] = []
    monkeypatch.setattr(subprocess, "call", lambda args, cwd: calls.append((args, cwd)) or 0)
    result = CliRunner().invoke(app, ["bench", "50"])
    assert result.exit_code == 0, result.output
    assert calls == [([sys.executable, "-m", "bench", "50"], ROOT)]
