"""App push through Firebase Cloud Messaging HTTP v1 (``provider.py``): the plug-in.

Its settings (``JOURNEYS_FCM_SERVICE_ACCOUNT``: a service account key, as a file path or its
JSON) and the builder, the only place google-auth is imported.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from pydantic import BaseModel, SecretStr

from durable_journeys.providers.base import Provider
from durable_journeys.providers.channels import Channel
from durable_journeys.providers.plugins import BuildContext, ProviderPlugin, register_provider


class FcmSettings(BaseModel):
    """FCM's settings."""

    fcm_service_account: SecretStr = SecretStr("")


def problem(settings: FcmSettings, channels: Collection[Channel], webhooks: bool) -> str | None:
    """The FCM setting the worker needs and lacks (the webhook app needs none: FCM posts no receipts)."""
    if not webhooks and not settings.fcm_service_account.get_secret_value().strip():
        return "JOURNEYS_FCM_SERVICE_ACCOUNT is not set: the path of the Firebase service account key (or its JSON)"
    return None


def build(settings: FcmSettings, context: BuildContext) -> Provider:
    """The FCM provider with the service account's key."""
    from durable_journeys.providers.fcm.provider import FcmProvider, ServiceAccount

    text = settings.fcm_service_account.get_secret_value().strip()
    return FcmProvider(context.http, ServiceAccount.load(text if text.startswith("{") else Path(text)))


PLUGIN = register_provider(ProviderPlugin("fcm", FcmSettings, build, problem=problem))
