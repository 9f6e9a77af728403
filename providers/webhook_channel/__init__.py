"""The shop's own delivery: messages POSTed to its endpoint, signed per Standard Webhooks (``provider.py``)."""

from __future__ import annotations

from collections.abc import Collection

from pydantic import BaseModel, Field, SecretStr

from durable_journeys.providers.base import Provider
from durable_journeys.providers.channels import Channel
from durable_journeys.providers.plugins import BuildContext, ProviderPlugin, register_provider


class WebhookChannelSettings(BaseModel):
    """Where the webhook channel posts, and the secret it signs with."""

    webhook_channel_url: str = ""
    webhook_channel_secret: SecretStr = Field(default=SecretStr(""), description="whsec_<base64>")


def problem(settings: WebhookChannelSettings, channels: Collection[Channel], webhooks: bool) -> str | None:
    """The webhook channel's setting the worker needs and lacks."""
    if not webhooks and not (settings.webhook_channel_url and settings.webhook_channel_secret.get_secret_value()):
        return "JOURNEYS_WEBHOOK_CHANNEL_URL and JOURNEYS_WEBHOOK_CHANNEL_SECRET must be set to use the webhook channel"
    return None


def build(settings: WebhookChannelSettings, context: BuildContext) -> Provider:
    """The signed-webhook provider."""
    from durable_journeys.providers.webhook_channel.provider import SignedWebhookProvider

    return SignedWebhookProvider(
        context.http, url=settings.webhook_channel_url, secret=settings.webhook_channel_secret.get_secret_value()
    )


PLUGIN = register_provider(ProviderPlugin("webhook", WebhookChannelSettings, build, problem=problem))
