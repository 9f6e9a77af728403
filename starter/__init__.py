"""The app's side: the ``Journeys`` facade, the webhook app and the ``journeys`` CLI.

The names below load on first use (PEP 562): ``journeys --help``, or a command that needs neither
the facade nor the webhook app, does not pay for FastAPI and the Temporal client at start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers (`X as X`: re-exported)
    from durable_journeys.starter.errors import InvalidInput as InvalidInput
    from durable_journeys.starter.errors import JourneyNotFound as JourneyNotFound
    from durable_journeys.starter.journeys import Journeys as Journeys
    from durable_journeys.starter.webhooks import create_webhook_app as create_webhook_app

_EXPORTS = {
    "InvalidInput": "durable_journeys.starter.errors",
    "JourneyNotFound": "durable_journeys.starter.errors",
    "Journeys": "durable_journeys.starter.journeys",
    "create_webhook_app": "durable_journeys.starter.webhooks",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value
