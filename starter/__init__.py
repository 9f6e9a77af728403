"""The app's side: the ``Journeys`` facade, the webhook app and the ``journeys`` CLI."""

from starter.errors import InvalidInput, JourneyNotFound
from starter.journeys import Journeys
from starter.webhooks import create_webhook_app

__all__ = ["InvalidInput", "JourneyNotFound", "Journeys", "create_webhook_app"]
