"""Every patch id a journey uses is listed in ``workflows/patches.py`` with the release that may retire it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from durable_journeys.workflows import ENGINE
from durable_journeys.workflows.patches import GENERATIONS, LIVE, Patch

ROOT = Path(__file__).resolve().parent.parent
PATCH_CALLS = {"patched", "deprecate_patch"}


def patch_ids(source: str) -> set[str]:
    """The ids passed to ``workflow.patched`` / ``workflow.deprecate_patch`` (a literal or a module constant)."""
    tree = ast.parse(source)
    constants = {
        target.id: node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PATCH_CALLS):
            continue
        [arg] = node.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found.add(arg.value)
        elif isinstance(arg, ast.Name) and arg.id in constants:
            found.add(constants[arg.id])
        else:
            raise AssertionError(f"a patch id must be a string or a module constant: {ast.unparse(arg)}")
    return found


def used_ids() -> set[str]:
    return {i for path in sorted((ROOT / "workflows").rglob("*.py")) for i in patch_ids(path.read_text())}


def test_live_patches_are_exactly_the_ones_in_use_each_with_its_retirement(capsys: pytest.CaptureFixture[str]) -> None:
    listed = {p.id: p for p in LIVE}
    assert len(listed) == len(LIVE), "a patch id is listed twice"
    assert used_ids() == set(listed), "workflows/patches.py must list exactly the patch ids the journeys use"
    for patch in LIVE:
        assert patch.since < patch.deprecate_in <= patch.remove_in, patch
    with capsys.disabled():
        print("\nlive patches:", ", ".join(f"{p.id} (since {p.since}, retire {p.remove_in})" for p in LIVE) or "none")


def test_the_check_finds_patch_ids_written_either_way() -> None:
    source = 'REVIEW = "review-daytime"\nif workflow.patched(REVIEW) or workflow.deprecate_patch("x"):\n    pass\n'
    assert patch_ids(source) == {"review-daytime", "x"}
    with pytest.raises(AssertionError, match="string or a module constant"):
        patch_ids("workflow.patched(make_id())\n")


def test_a_patch_names_the_releases_of_its_life() -> None:
    p = Patch(id="review-daytime", since="1.1", deprecate_in="1.3", remove_in="1.4", why="review in daytime hours")
    assert p.since < p.deprecate_in <= p.remove_in


def test_the_engine_generation_new_runs_take_is_the_newest_listed() -> None:
    assert [g.number for g in GENERATIONS] == list(range(2, ENGINE + 1)), "list each generation once, in order"
    assert all(g.why and g.since for g in GENERATIONS)
