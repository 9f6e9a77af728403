"""Errors raised by Durable Journeys.

The tree (every error is a ``JourneysError``)::

    JourneysError
    ├── ConfigError             settings, keys, templates or senders are wrong; retrying won't help
    │   └── TemplateError       unknown template, missing variable, text not encodable in cp949
    ├── ProviderError           a provider call went wrong
    │   ├── ProviderRejected    the provider answered "no" for this message
    │   └── ProviderUnavailable the provider could not be reached or answered 429/5xx
    └── WebhookError            an inbound webhook cannot be trusted or read
        └── SignatureError      missing, forged or stale signature

Providers return most outcomes as a :class:`providers.SendResult` rather than raising: a rejected
message is an ordinary answer the journey branches on. Only the activity layer turns errors into
Temporal ``ApplicationError``s; providers know nothing of Temporal.
"""

from __future__ import annotations


class JourneysError(Exception):
    """Root of every error this project raises."""


class ConfigError(JourneysError):
    """Configuration is wrong (keys, senders, templates); retrying cannot help."""


class TemplateError(ConfigError):
    """A template is unknown, misses a variable, or holds text that cannot be sent."""


class ProviderError(JourneysError):
    """A provider call went wrong."""


class ProviderRejected(ProviderError):
    """The provider refused the message."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or is overloaded."""


class WebhookError(JourneysError):
    """An inbound webhook cannot be read."""


class SignatureError(WebhookError):
    """An inbound webhook has a missing, forged or stale signature."""
