"""The app's side: the ``Journeys`` facade, the webhook app and the ``journeys`` CLI."""

from durable_journeys.starter.errors import InvalidInput, JourneyNotFound
from durable_journeys.starter.journeys import Journeys
from durable_journeys.starter.webhooks import create_webhook_app

__all__ = ["InvalidInput", "JourneyNotFound", "Journeys", "create_webhook_app"]
