"""Which providers serve which channel, in order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from durable_journeys.providers.base import Channel, Provider
from durable_journeys.providers.errors import ConfigError


class ProviderRegistry:
    """Maps channels to an ordered chain of providers, and provider names to providers.

    The first provider of a channel sends; the next ones take over only when the one before
    answers a configuration error, or stays unavailable past its retry budget (never while an
    outcome is unknown): see ``activities.send``.

    Args:
        providers: every configured provider by name.
        routes: channel -> provider name, or names in order; channels not listed use ``default``.
        default: provider name for channels without a route.
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        routes: Mapping[Channel, str | Sequence[str]] | None = None,
        default: str | None = None,
    ) -> None:
        self._providers = dict(providers)
        self._chains = {
            channel: [names] if isinstance(names, str) else list(names) for channel, names in (routes or {}).items()
        }
        self._default = default
        for name in [*(n for chain in self._chains.values() for n in chain), *([default] if default else [])]:
            if name not in self._providers:
                raise ConfigError(f"route names provider {name!r}, which is not configured")

    def chain(self, channel: Channel) -> list[Provider]:
        """The providers of ``channel``, in the order they are tried (empty: none)."""
        names = self._chains.get(channel) or ([self._default] if self._default else [])
        return [self._providers[name] for name in names]

    def for_channel(self, channel: Channel) -> Provider:
        """The provider that sends on ``channel`` first.

        Raises:
            ConfigError: no provider serves the channel.
        """
        chain = self.chain(channel)
        if not chain:
            raise ConfigError(f"no provider is configured for channel {channel.value}")
        return chain[0]

    def route_of(self, channel: Channel) -> str | None:
        """The name of the provider that sends on ``channel`` first (None: no provider)."""
        chain = self.chain(channel)
        return chain[0].name if chain else None

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

    def replace(self, name: str, provider: Provider) -> Provider:
        """Put ``provider`` where the provider ``name`` was (every channel routed to it); returns the one replaced.

        For tests of faults (``starter.testing.JourneyKit.replace_provider``): the registry is shared
        by the send activity, so the next send uses it.

        Raises:
            ConfigError: no such provider.
        """
        old = self.get(name)
        self._providers[name] = provider
        return old

    def set_chain(self, channel: Channel, names: Sequence[str]) -> None:
        """Route ``channel`` through ``names`` in order (empty: no provider).

        Raises:
            ConfigError: a name that is not configured.
        """
        for name in names:
            self.get(name)
        self._chains[channel] = list(names)

    def routed(self) -> list[str]:
        """Names of the providers some channel sends through (first or as a failover): whose receipts count."""
        names = {n for chain in self._chains.values() for n in chain}
        if self._default:
            names.add(self._default)
        return sorted(names)
