"""The sandbox provider: our own aggregator-like HTTP service and its client.

The service (``create_sandbox_app``) accepts sends on every channel, records them, honours
idempotency keys and posts signed delivery receipts to the webhook app. Behaviour is chosen by
the recipient (phone ending ``0001`` is not a KakaoTalk user, and so on: see the README).
"""

from durable_journeys.providers.sandbox._app import ReceiptTiming, SandboxConfig, SandboxState, create_sandbox_app
from durable_journeys.providers.sandbox._client import ERROR_CLASSES, SandboxProvider

__all__ = [
    "ERROR_CLASSES",
    "ReceiptTiming",
    "SandboxConfig",
    "SandboxProvider",
    "SandboxState",
    "create_sandbox_app",
]
