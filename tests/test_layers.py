"""The layer rule, held by a test: starter -> workflows -> activities -> providers, one way only.

``worker.py`` composes them all; nothing below ``starter`` imports ``starter`` or ``worker``, and
``providers`` imports no Temporal.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["providers", "activities", "workflows", "starter"]  # lowest first
OURS = {*LAYERS, "worker"}


def imported_packages(path: Path) -> set[str]:
    """Top-level names a module imports (at any depth: a function-local import counts too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


MODULES = sorted(p for layer in LAYERS for p in (ROOT / layer).rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_flow_down(path: Path) -> None:
    layer = path.relative_to(ROOT).parts[0]
    allowed = set(LAYERS[: LAYERS.index(layer) + 1]) | ({"worker"} if layer == "starter" else set())
    wrong = (imported_packages(path) & OURS) - allowed
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)} (above its layer)"


@pytest.mark.parametrize(
    "path", [p for p in MODULES if p.relative_to(ROOT).parts[0] == "providers"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_providers_know_no_temporal(path: Path) -> None:
    assert "temporalio" not in imported_packages(path)


def test_the_rule_would_catch_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from starter import Journeys\n")
    assert "starter" in imported_packages(bad)
