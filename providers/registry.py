"""Which provider serves which channel."""

from __future__ import annotations

from collections.abc import Mapping

from providers.base import Channel, Provider
from providers.errors import ConfigError


class ProviderRegistry:
    """Maps channels to providers and provider names to providers.

    Args:
        providers: every configured provider by name.
        routes: channel -> provider name; channels not listed use ``default``.
        default: provider name for channels without a route.
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        routes: Mapping[Channel, str] | None = None,
        default: str | None = None,
    ) -> None:
        self._providers = dict(providers)
        self._routes = dict(routes or {})
        self._default = default
        for name in [*self._routes.values(), *([default] if default else [])]:
            if name not in self._providers:
                raise ConfigError(f"route names provider {name!r}, which is not configured")

    def for_channel(self, channel: Channel) -> Provider:
        """The provider that sends on ``channel``.

        Raises:
            ConfigError: no provider serves the channel.
        """
        name = self._routes.get(channel, self._default)
        if name is None:
            raise ConfigError(f"no provider is configured for channel {channel.value}")
        return self._providers[name]

    def route_of(self, channel: Channel) -> str | None:
        """The name of the provider that sends on ``channel`` (None: no provider)."""
        return self._routes.get(channel, self._default)

    def get(self, name: str) -> Provider:
        """The provider called ``name``.

        Raises:
            ConfigError: no such provider.
        """
        try:
            return self._providers[name]
        except KeyError:
            raise ConfigError(f"unknown provider {name!r}") from None

    def names(self) -> list[str]:
        """Names of all configured providers."""
        return sorted(self._providers)
