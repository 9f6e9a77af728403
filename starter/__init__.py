"""The app's side: the ``Journeys`` facade, the webhook app and the ``journeys`` CLI.

The names below load on first use (PEP 562): ``journeys --help``, or a command that needs neither
the facade nor the webhook app, does not pay for FastAPI and the Temporal client at start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from durable_journeys.providers.lazy import lazy_exports

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


__getattr__ = lazy_exports(__name__, _EXPORTS)
