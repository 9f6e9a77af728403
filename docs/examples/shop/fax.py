"""A channel and a provider of the shop's own, added without touching the pack (README "Adding a channel").

A toy: the "fax" channel reaches a customer at ``profile.addresses["fax"]`` and its provider keeps
what it is given in ``outbox``; a real one would call its service in ``send`` (through
``context.http``) and say what its errors mean. The contact policy treats fax like any channel
that carries ads with the (광고) mark: consent, quiet hours, caps and duplicates apply.

Name this module in ``JOURNEYS_PLUGINS='["shop.fax"]'`` and route the channel to its provider with
``JOURNEYS_ROUTES='{"fax": ["fax"]}'``; ``JOURNEYS_FAX_HEADER`` is its one setting.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from durable_journeys.providers import Channel, OutboundMessage, SendResult, SendStatus
from durable_journeys.providers.channels import ChannelSpec
from durable_journeys.providers.common import NoReceipts
from durable_journeys.providers.plugins import BuildContext, ProviderPlugin, register_provider


class FaxSettings(BaseSettings):
    """The fax provider's settings (``JOURNEYS_FAX_...``)."""

    model_config = SettingsConfigDict(env_prefix="JOURNEYS_FAX_", env_file=".env", extra="ignore")

    header: str = Field(default="SHOP FAX", min_length=1, max_length=40, description="printed atop every page")


class FaxProvider(NoReceipts):
    """Takes every fax; posts no receipts."""

    name = "fax"
    gateway_channels: frozenset[Channel] = frozenset()

    def __init__(self, header: str) -> None:
        """A provider that prints ``header`` on every page."""
        self.header = header
        self.outbox: list[tuple[str, OutboundMessage]] = []

    async def send(self, msg: OutboundMessage) -> SendResult:
        """Accept the fax (a real provider would send it here)."""
        self.outbox.append((self.header, msg))
        return SendResult(status=SendStatus.ACCEPTED, provider_message_id=f"fax-{len(self.outbox)}")


def build(settings: FaxSettings, context: BuildContext) -> FaxProvider:
    """The provider from its settings."""
    return FaxProvider(settings.header)


register_provider(ProviderPlugin("fax", FaxSettings, build, channels=(ChannelSpec("fax", label="팩스"),)))
FAX = Channel("fax")
