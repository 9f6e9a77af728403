"""Web push (VAPID, RFC 8030/8291/8292) through pywebpush (``provider.py``): the plug-in."""

from __future__ import annotations

from collections.abc import Collection

from pydantic import BaseModel, Field, SecretStr

from durable_journeys.providers.base import Provider
from durable_journeys.providers.channels import Channel
from durable_journeys.providers.plugins import BuildContext, ProviderPlugin, register_provider


class WebPushSettings(BaseModel):
    """Web push's settings: the application server's VAPID key pair (base64url private key) and its contact."""

    webpush_vapid_private_key: SecretStr = SecretStr("")
    webpush_subject: str = Field(default="", description="mailto: address or https URL of the sender")


def problem(settings: WebPushSettings, channels: Collection[Channel], webhooks: bool) -> str | None:
    """The web push setting the worker needs and lacks."""
    if not webhooks and not (settings.webpush_vapid_private_key.get_secret_value() and settings.webpush_subject):
        return "JOURNEYS_WEBPUSH_VAPID_PRIVATE_KEY and JOURNEYS_WEBPUSH_SUBJECT must be set to send web push"
    return None


def build(settings: WebPushSettings, context: BuildContext) -> Provider:
    """The web push provider."""
    from durable_journeys.providers.webpush.provider import WebPushProvider

    return WebPushProvider(
        context.http,
        vapid_private_key=settings.webpush_vapid_private_key.get_secret_value(),
        subject=settings.webpush_subject,
    )


PLUGIN = register_provider(ProviderPlugin("webpush", WebPushSettings, build, problem=problem))
