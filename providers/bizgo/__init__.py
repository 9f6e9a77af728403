"""Bizgo (Infobank): AlimTalk, Brand Message, RCS and SMS/LMS through the official SDK (``provider.py``).

This module is the plug-in: its settings (``JOURNEYS_BIZGO_...``), what each routed channel
needs of them, and the builder, which is the only place the SDK is imported.
"""

from __future__ import annotations

from collections.abc import Collection
from importlib import metadata
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from durable_journeys.providers.base import Provider, ReceiptMode
from durable_journeys.providers.channels import Channel
from durable_journeys.providers.plugins import BuildContext, ProviderPlugin, register_provider
from durable_journeys.providers.secrets import secret_problem


def _version() -> str:
    try:
        return metadata.version("durable-journeys")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0"


VERSION = ("durable-journeys", _version())  # how Bizgo's SDK names its caller


class BizgoSettings(BaseModel):
    """Bizgo's settings (``JOURNEYS_BIZGO_...``)."""

    bizgo_api_key: SecretStr = SecretStr("")
    bizgo_webhook_secret: SecretStr = Field(default=SecretStr(""), description="Bizgo signs report webhooks with it")
    bizgo_environment: Literal["production", "sandbox"] = "production"
    bizgo_sender_key: str = Field(default="", description="Kakao sender profile key (AlimTalk, Brand Message)")
    bizgo_caller_number: str = Field(default="", description="registered caller number (SMS/LMS, RCS)")
    bizgo_rcs_brand_key: str = ""
    bizgo_rcs_format_id: str = ""
    bizgo_receipts: Literal["webhook", "poll"] = "webhook"
    bizgo_alimtalk_send_type: Literal["text", "template"] = Field(
        default="text", description="text: our rendered text; template: Kakao fills its approved template"
    )
    bizgo_sends_per_second: float = Field(default=200.0, gt=0, le=10_000, description="the account's contracted rate")


def problem(settings: BizgoSettings, channels: Collection[Channel], webhooks: bool) -> str | None:
    """The first Bizgo setting the routed ``channels`` (or its report webhooks) need and lack."""
    if not settings.bizgo_api_key.get_secret_value().strip():
        return "JOURNEYS_BIZGO_API_KEY is not set: issue a key in Bizgo's console (발송관리 > 연동관리)"
    if {Channel.ALIMTALK, Channel.BRAND_MESSAGE} & set(channels) and not settings.bizgo_sender_key:
        return "JOURNEYS_BIZGO_SENDER_KEY is not set: the Kakao channel's sender profile key"
    if {Channel.SMS, Channel.RCS} & set(channels) and not settings.bizgo_caller_number:
        return "JOURNEYS_BIZGO_CALLER_NUMBER is not set: the caller number registered with Bizgo"
    if Channel.RCS in channels and not (settings.bizgo_rcs_brand_key and settings.bizgo_rcs_format_id):
        return "JOURNEYS_BIZGO_RCS_BRAND_KEY and JOURNEYS_BIZGO_RCS_FORMAT_ID must be set to send RCS"
    if webhooks and settings.bizgo_receipts == "webhook":
        secret = secret_problem(settings.bizgo_webhook_secret.get_secret_value())
        if secret == "is not set":
            return (
                "JOURNEYS_BIZGO_WEBHOOK_SECRET is not set: Bizgo gives it on request; no report is accepted without it"
            )
        if secret:
            return f"JOURNEYS_BIZGO_WEBHOOK_SECRET {secret}: use the secret Bizgo issued for report webhooks"
    return None


def build(settings: BizgoSettings, context: BuildContext) -> Provider:
    """The Bizgo provider (the SDK's client, or the one a test passes as ``clients["bizgo"]``)."""
    from bizgo import AsyncBizgo, Environment, RateLimit

    from durable_journeys.providers.bizgo.provider import BizgoConfig, BizgoProvider

    client = context.clients.get("bizgo") or AsyncBizgo(
        settings.bizgo_api_key.get_secret_value(),
        environment=Environment[settings.bizgo_environment.upper()],
        timeout=context.timeout,
        # The SDK's limiter holds per process; the fleet-wide limit is the task queue's.
        rate_limit=RateLimit(send=settings.bizgo_sends_per_second),
        app_info=VERSION,
    )
    return BizgoProvider(
        client,
        BizgoConfig(
            sender_key=settings.bizgo_sender_key,
            caller_number=settings.bizgo_caller_number,
            rcs_brand_key=settings.bizgo_rcs_brand_key,
            rcs_format_id=settings.bizgo_rcs_format_id,
            alimtalk_send_type=settings.bizgo_alimtalk_send_type,
            receipts=ReceiptMode.POLL if settings.bizgo_receipts == "poll" else ReceiptMode.WEBHOOK,
        ),
        webhook_secret=settings.bizgo_webhook_secret.get_secret_value(),
    )


PLUGIN = register_provider(
    ProviderPlugin(
        "bizgo",
        BizgoSettings,
        build,
        problem=problem,
        sends_per_second=lambda settings: settings.bizgo_sends_per_second,
    )
)
