"""Which provider sends each channel, what to do when one fails, and the shop's own plug-ins."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from durable_journeys.providers import Channel
from durable_journeys.providers.plugins import provider_plugins


def _known_provider(name: str) -> str:
    if name not in provider_plugins():
        known = ", ".join(sorted(provider_plugins()))
        raise ValueError(f"{name!r} is no provider (use {known}, or a plug-in named in JOURNEYS_PLUGINS)")
    return name


ProviderName = Annotated[str, Field(max_length=32), AfterValidator(_known_provider)]
"""A registered provider plug-in's name (``providers.plugins``)."""


class RoutingSettings(BaseModel):
    """``JOURNEYS_ROUTES``, ``JOURNEYS_DEFAULT_PROVIDER``, failover, send rates and ``JOURNEYS_PLUGINS``."""

    # Modules that register the shop's own channels and providers, imported before the settings
    # are read (e.g. ["shop.fax"]; see providers/plugins.py).
    plugins: list[Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*$", max_length=200)]] = Field(
        default_factory=list, max_length=50, description='modules with your channels and providers, e.g. ["shop.fax"]'
    )
    # Which provider sends each channel, e.g. {"alimtalk": ["bizgo"], "sms": ["bizgo"]} (JSON);
    # a channel not listed goes to default_provider ("none": it has no provider), in_app to the inbox.
    routes: dict[Channel, list[ProviderName]] = Field(default_factory=dict)
    # A channel's next provider takes a message its provider refused for configuration at once, or
    # one it was unavailable for (known not sent) after this many attempts; never an unknown one.
    failover_after_attempts: int = Field(default=3, ge=1, le=100)
    # How long a send waits for its message's receipt before the webhook app signals it instead:
    # a receipt within it comes back in the send's answer, sparing the journey a signal and a
    # receipt timer (two billed actions). The send activity holds its slot meanwhile.
    receipt_grace_seconds: float = Field(default=3.0, ge=0, le=10)
    default_provider: Literal["sandbox", "none"] = "sandbox"
    provider_timeout_seconds: float = Field(default=10.0, gt=0)
    # Fleet-wide send rates of providers (JSON, e.g. {"fcm": 500}): each gets its own task queue.
    provider_sends_per_second: dict[ProviderName, Annotated[float, Field(gt=0, le=100_000)]] = Field(
        default_factory=dict
    )
