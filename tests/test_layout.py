"""README "Layout" draws the tree as it is: every product module listed, every listed module there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("starter", "workflows", "activities", "providers")


def drawn() -> set[str]:
    """The paths the README's Layout tree names, relative to the repository root."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    paths: set[str] = set()
    folder = ""
    for line in block.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            folder = line.split()[0]
            paths.add(folder)
            continue
        if line.startswith("   "):  # a description's second line
            continue
        for word in line.split():
            if re.fullmatch(r"[\w/]+(\.py|/)", word):
                paths.add(folder + word)
            else:
                break
    return paths


def actual() -> set[str]:
    paths = {"worker.py", *(f"{f}/" for f in FOLDERS)}
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if path.name == "__init__.py":
                continue
            if rel.parts[1] == "store" or (rel.parts[0] == "providers" and len(rel.parts) > 2):  # drawn as folders
                paths.add(f"{rel.parts[0]}/{rel.parts[1]}/")
                continue
            paths.add(str(rel))
    return paths


def test_the_layout_lists_every_module_and_nothing_else() -> None:
    missing, stale = actual() - drawn(), drawn() - actual()
    assert not missing, f"README Layout does not list {sorted(missing)}"
    assert not stale, f"README Layout lists {sorted(stale)}, which are not in the repository"


def test_the_check_reads_the_tree() -> None:
    assert {"workflows/engine/sending.py", "activities/store/", "worker.py"} <= drawn()


def test_the_architecture_draws_the_layers_the_layer_test_holds() -> None:
    """docs/architecture.md §2 draws the layers top-down as tests/test_layers.py enforces them."""
    from tests.test_layers import LAYERS

    section = (ROOT / "docs" / "architecture.md").read_text().split("## 2.", 1)[1]
    block = section.split("```", 2)[1]
    drawn_layers = [line.split()[0].rstrip("/") for line in block.splitlines() if line.strip()]
    assert drawn_layers == ["worker.py", *reversed(LAYERS)]
