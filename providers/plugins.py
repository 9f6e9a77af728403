"""Provider plug-ins: what the worker needs to build a provider, declared where the provider lives.

A plug-in names the provider (the name routes use: ``JOURNEYS_ROUTES='{"sms": ["bizgo"]}'``),
its settings (a pydantic model), the builder that makes the provider from them, the check that
says in one line which setting is missing for the channels routed to it, its fleet-wide send
rate, and the channels it brings. Each built-in provider's folder declares one
(``providers/bizgo/__init__.py`` ...); a shop's provider is one more, registered in one line::

    register_provider(ProviderPlugin("fax", FaxSettings, build=build_fax, channels=(FAX,)))

and named in ``JOURNEYS_PLUGINS`` so every process imports it before it reads its settings.

A plug-in's settings are read from the environment by its own model (a pydantic-settings
``BaseSettings`` with ``env_prefix="JOURNEYS_FAX_"``, say); the built-in ones are part of the
worker's settings instead, so their variables keep their names (``JOURNEYS_BIZGO_API_KEY``).
Builders import the vendor's SDK, never this module or the plug-in declaration: reading settings
and starting journeys loads no SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from durable_journeys.providers.base import Provider
from durable_journeys.providers.channels import (
    CHANNEL_NAME,
    Channel,
    ChannelSpec,
    caller_module,
    claim,
    register_channel,
)

PROVIDER_NAME = CHANNEL_NAME  # the same rule: routes name both
RESERVED = frozenset({"inbox", "none"})  # the in-app inbox is built with the store; "none" means no provider

S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True)
class BuildContext:
    """What a builder may use besides its settings.

    Args:
        http: the worker's shared HTTP client (no redirects, the provider timeout).
        timeout: ``JOURNEYS_PROVIDER_TIMEOUT_SECONDS``.
        clients: clients a test passes in place of the real ones, by provider name
            (``build_providers(..., clients={"bizgo": fake})``).
    """

    http: Any
    timeout: float
    clients: Mapping[str, Any] = field(default_factory=dict)


def _no_problem(settings: Any, channels: Collection[Channel], webhooks: bool) -> str | None:
    return None


def _no_rate(settings: Any) -> float | None:
    return None


@dataclass(frozen=True)
class ProviderPlugin(Generic[S]):
    """A provider as the worker builds it.

    Args:
        name: the provider's name in routes and the message log.
        settings: its settings model; the worker's settings when they include it (the built-in
            providers), else read from the environment by instantiating it.
        build: makes the provider from its settings and the :class:`BuildContext`.
        problem: what keeps it from sending ``channels`` (routed to it), as one line naming the
            ``JOURNEYS_...`` setting, or None; ``webhooks``: asked by the webhook app, which needs
            only what checks receipts.
        sends_per_second: its fleet-wide rate, if any: it gets a task queue of its own.
        channels: channels it brings, registered with it.
    """

    name: str
    settings: type[S]
    build: Callable[[S, BuildContext], Provider]
    problem: Callable[[S, Collection[Channel], bool], str | None] = _no_problem
    sends_per_second: Callable[[S], float | None] = _no_rate
    channels: tuple[ChannelSpec, ...] = ()
    module: str = field(default="", compare=False)

    def settings_from(self, settings: BaseModel) -> S:
        """This plug-in's settings: ``settings`` itself when it includes them, else read from the environment."""
        if isinstance(settings, self.settings):
            return settings
        return self.settings()


_PLUGINS: dict[str, ProviderPlugin[Any]] = {}


def register_provider(plugin: ProviderPlugin[S]) -> ProviderPlugin[S]:
    """Make ``plugin`` a provider the routes may name (and register its channels); the one line that adds one.

    Registering the same name again from the same module is a no-op (see ``channels.claim``).

    Raises:
        ValueError: the name is malformed or reserved, or another module registered it or one of its channels.
    """
    if not plugin.module:
        plugin = replace(plugin, module=caller_module())
    if not PROVIDER_NAME.fullmatch(plugin.name) or plugin.name in RESERVED:
        raise ValueError(f"provider name {plugin.name!r} must be lower case letters, digits and _, and not inbox/none")
    claimed = claim(_PLUGINS, "provider", plugin.name, plugin)
    try:
        for spec in plugin.channels:
            register_channel(spec if spec.module else replace(spec, module=plugin.module))
    except ValueError:
        if claimed is plugin:  # all or nothing: no provider whose channel another module holds
            del _PLUGINS[plugin.name]
        raise
    return claimed


def provider_plugin(name: str) -> ProviderPlugin[Any]:
    """The plug-in called ``name``.

    Raises:
        KeyError: none is registered.
    """
    return _PLUGINS[name]


def provider_plugins() -> dict[str, ProviderPlugin[Any]]:
    """Every registered plug-in by name (the built-in ones once ``starter.settings`` is imported)."""
    return dict(_PLUGINS)
