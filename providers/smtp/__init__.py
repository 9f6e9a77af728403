"""E-mail over SMTP with aiosmtplib (``provider.py``): the plug-in."""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from durable_journeys.providers.base import Provider
from durable_journeys.providers.channels import Channel
from durable_journeys.providers.plugins import BuildContext, ProviderPlugin, register_provider


class SmtpSettings(BaseModel):
    """The SMTP server, the sender and the unsubscribe links (``JOURNEYS_SMTP_...``)."""

    smtp_host: str = ""
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_sender: str = Field(default="", description='the From address, e.g. "Shop <shop@example.com>"')
    smtp_unsubscribe_url: str = Field(default="", description="one-click unsubscribe URL ({ref}: the message)")
    smtp_unsubscribe_mailto: str = ""


def problem(settings: SmtpSettings, channels: Collection[Channel], webhooks: bool) -> str | None:
    """The SMTP setting the worker needs and lacks."""
    if not webhooks and not (settings.smtp_host and settings.smtp_sender):
        return "JOURNEYS_SMTP_HOST and JOURNEYS_SMTP_SENDER must be set to send e-mail"
    return None


def build(settings: SmtpSettings, context: BuildContext) -> Provider:
    """The SMTP provider."""
    from durable_journeys.providers.smtp.provider import SmtpConfig, SmtpProvider

    return SmtpProvider(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value(),
            security=settings.smtp_security,
            unsubscribe_url=settings.smtp_unsubscribe_url,
            unsubscribe_mailto=settings.smtp_unsubscribe_mailto,
            timeout=context.timeout,
        )
    )


PLUGIN = register_provider(ProviderPlugin("smtp", SmtpSettings, build, problem=problem))
