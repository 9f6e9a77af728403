"""The sandbox provider: our own aggregator-like HTTP service and its client.

The service (``create_sandbox_app``) accepts sends on every channel, records them, honours
idempotency keys and posts signed delivery receipts to the webhook app. Behaviour is chosen by
the recipient (phone ending ``0001`` is not a KakaoTalk user, and so on: see the README).

This module is also the sandbox's plug-in (its settings and builder); the service and the
client load on first use, so reading settings loads no web framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, SecretStr

from durable_journeys.providers.base import Provider
from durable_journeys.providers.lazy import lazy_exports
from durable_journeys.providers.plugins import BuildContext, ProviderPlugin, register_provider

if TYPE_CHECKING:
    from durable_journeys.providers.sandbox._app import ReceiptTiming as ReceiptTiming
    from durable_journeys.providers.sandbox._app import SandboxConfig as SandboxConfig
    from durable_journeys.providers.sandbox._app import SandboxState as SandboxState
    from durable_journeys.providers.sandbox._app import create_sandbox_app as create_sandbox_app
    from durable_journeys.providers.sandbox._client import ERROR_CLASSES as ERROR_CLASSES
    from durable_journeys.providers.sandbox._client import SandboxProvider as SandboxProvider

_APP, _CLIENT = f"{__name__}._app", f"{__name__}._client"
_EXPORTS = {
    "ReceiptTiming": _APP,
    "SandboxConfig": _APP,
    "SandboxState": _APP,
    "create_sandbox_app": _APP,
    "ERROR_CLASSES": _CLIENT,
    "SandboxProvider": _CLIENT,
}

__all__ = [*_EXPORTS, "PLUGIN", "SandboxSettings"]


__getattr__ = lazy_exports(__name__, _EXPORTS)


class SandboxSettings(BaseModel):
    """Where the sandbox service listens, and its two secrets (no usable default: see ``require_secrets``)."""

    sandbox_url: str = "http://127.0.0.1:8600"
    sandbox_api_key: SecretStr = SecretStr("")
    sandbox_webhook_secret: SecretStr = SecretStr("")


def build(settings: SandboxSettings, context: BuildContext) -> Provider:
    """The sandbox's client (over ``clients["sandbox"]``, an httpx client a test passes, if given)."""
    import httpx

    from durable_journeys.providers.sandbox._client import SandboxProvider

    client = context.clients.get("sandbox") or httpx.AsyncClient(base_url=settings.sandbox_url, timeout=context.timeout)
    return SandboxProvider(
        client,
        api_key=settings.sandbox_api_key.get_secret_value(),
        webhook_secret=settings.sandbox_webhook_secret.get_secret_value(),
    )


PLUGIN = register_provider(ProviderPlugin("sandbox", SandboxSettings, build))
