"""The layer rule, held by a test: starter -> workflows -> activities -> providers, one way only.

``worker.py``, the composition root, sits above them all: only the ``journeys worker`` command
(``starter/cli.py``) imports it; nothing below ``starter`` imports ``starter``, and
``providers`` imports no Temporal. Every import of the pack's own code goes through its installed
namespace, ``durable_journeys``: a bare ``import workflows`` would find a shop's own package.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["providers", "activities", "workflows", "starter"]  # lowest first
OURS = {*LAYERS, "worker"}
PACKAGE = "durable_journeys"


def imported_modules(path: Path) -> set[str]:
    """Dotted names a module imports (at any depth: a function-local import counts too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def imported_packages(path: Path) -> set[str]:
    """Top-level names a module imports; the pack's own by their folder (``durable_journeys.x`` is ``x``)."""
    return {
        name.split(".")[1] if name.startswith(PACKAGE + ".") else name.split(".")[0]
        for name in imported_modules(path)
        if name != PACKAGE
    }


MODULES = sorted(p for layer in LAYERS for p in (ROOT / layer).rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_flow_down(path: Path) -> None:
    layer = path.relative_to(ROOT).parts[0]
    root = {"worker"} if path == ROOT / "starter" / "cli.py" else set()  # `journeys worker` runs the root
    allowed = set(LAYERS[: LAYERS.index(layer) + 1]) | root
    wrong = (imported_packages(path) & OURS) - allowed
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)} (above its layer)"


@pytest.mark.parametrize(
    "path", [p for p in MODULES if p.relative_to(ROOT).parts[0] == "providers"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_providers_know_no_temporal(path: Path) -> None:
    assert "temporalio" not in imported_packages(path)


SOURCES = sorted(
    p for top in (*LAYERS, "tests", "bench", "docs") for p in (ROOT / top).rglob("*.py") if "migrations" not in p.parts
) + [ROOT / "worker.py"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pack_is_imported_by_its_namespace(path: Path) -> None:
    bare = {name for name in imported_modules(path) if name.split(".")[0] in OURS}
    assert not bare, f"{path.relative_to(ROOT)} imports {sorted(bare)}: write durable_journeys.{sorted(bare)[0]}"


def test_the_rule_would_catch_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from durable_journeys.starter import Journeys\n    import workflows\n")
    assert "starter" in imported_packages(bad)
    assert "workflows" in imported_modules(bad)


VENDOR_SDKS = ("bizgo", "pywebpush", "google.auth", "aiosmtplib", "standardwebhooks", "alembic")


@pytest.mark.parametrize(
    "module",
    [
        "durable_journeys.starter",
        "durable_journeys.starter.settings",
        "durable_journeys.starter.assembly",
        "durable_journeys.worker",
        "durable_journeys.workflows",
        "durable_journeys.providers.bizgo",
        "durable_journeys.providers.fcm",
        "durable_journeys.providers.webpush",
    ],
)
def test_importing_the_facade_or_the_settings_loads_no_vendor_sdk(module: str) -> None:
    """A provider's SDK loads when that provider is built; the store's migrations when it migrates."""
    assert loaded_by(module, VENDOR_SDKS) == []


def loaded_by(module: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` a fresh interpreter has loaded once it imported ``module``."""
    code = f"import sys, {module}; print(' '.join(m for m in {watched!r} if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return run.stdout.split()


PURE = ("durable_journeys.activities.contracts", "durable_journeys.activities.masking")
IO_LIBRARIES = ("sqlalchemy", "httpx", "jinja2", "structlog", "temporalio", "alembic", "fastapi", "prometheus_client")


@pytest.mark.parametrize("module", PURE)
def test_the_contracts_are_pure(module: str) -> None:
    """What journeys import inside the workflow sandbox loads no I/O library (nor Temporal)."""
    assert loaded_by(module, IO_LIBRARIES) == []


@pytest.mark.parametrize(
    "path", sorted((ROOT / "workflows").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT / "workflows"))
)
def test_journeys_reach_activities_only_through_the_contracts(path: Path) -> None:
    """Activities are scheduled by name; only the metrics counter is passed through the sandbox."""
    from_activities = {m for m in imported_modules(path) if m.startswith(f"{PACKAGE}.activities")}
    assert from_activities <= {*PURE, f"{PACKAGE}.activities.metrics"}, sorted(from_activities)


def test_every_package_folder_is_in_the_distribution() -> None:
    """pyproject.toml lists the packages by hand (the namespace maps the repository root): none forgotten."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {
        ".".join((PACKAGE, *init.parent.relative_to(ROOT).parts))
        for layer in LAYERS
        for init in (ROOT / layer).rglob("__init__.py")
    }
    assert folders | {PACKAGE} == listed


@pytest.mark.parametrize("package", ["activities", "starter", "workflows"])
def test_a_package_loading_names_on_first_use_exports_what_it_declares(package: str) -> None:
    """A package's ``__init__`` names each export twice (for type checkers, and for loading on first use): both agree."""
    init = ROOT / package / "__init__.py"
    declared: dict[str, str] = {}
    guard = next(n for n in ast.walk(ast.parse(init.read_text())) if isinstance(n, ast.If))  # if TYPE_CHECKING:
    for node in ast.walk(guard):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            declared |= {alias.asname or alias.name: node.module for alias in node.names}
    module = importlib.import_module(f"{PACKAGE}.{package}")

    assert declared == module._EXPORTS
    assert all(getattr(module, name) is not None for name in declared)
