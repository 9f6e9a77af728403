"""Names a package exports but loads on first use (PEP 562).

So importing the package, or one of its light submodules, does not load its heavy ones
(SQLAlchemy, FastAPI, the Temporal client, vendor SDKs).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``name`` loaded from the module ``exports[name]`` names.

    Once loaded, a name is a plain attribute of the package.
    """

    def load(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return load
