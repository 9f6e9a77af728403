"""Everything a deployment configures, one module per area, read from ``JOURNEYS_...`` variables.

``Settings`` is composed of the areas: Temporal (``temporal.py``), the database
(``database.py``), routing and plug-ins (``routing.py``), each built-in provider's own settings
(declared in its folder under ``providers/``), the contact policy (``activities.policy.PolicyConfig``,
its one definition), the webhook app (``webhooks.py``), the journeys (``journeys.py``) and
operators (``operators.py``). Every field is the variable ``JOURNEYS_<FIELD>``, also read from
``.env``. :func:`load_settings` turns every mistake into one line naming the variable.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dotenv import dotenv_values
from pydantic import SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from durable_journeys.activities.policy import PolicyConfig
from durable_journeys.providers import ConfigError
from durable_journeys.providers.bizgo import BizgoSettings
from durable_journeys.providers.fcm import FcmSettings
from durable_journeys.providers.plugins import provider_plugins
from durable_journeys.providers.sandbox import SandboxSettings
from durable_journeys.providers.secrets import MIN_SECRET_BYTES, secret_problem
from durable_journeys.providers.smtp import SmtpSettings
from durable_journeys.providers.webhook_channel import WebhookChannelSettings
from durable_journeys.providers.webpush import WebPushSettings
from durable_journeys.starter.settings.database import DatabaseSettings, default_data_dir, without_password
from durable_journeys.starter.settings.journeys import JourneySettings
from durable_journeys.starter.settings.operators import OperatorSettings
from durable_journeys.starter.settings.routing import RoutingSettings
from durable_journeys.starter.settings.temporal import TemporalSettings
from durable_journeys.starter.settings.webhooks import WebhookAppSettings

if TYPE_CHECKING:
    from durable_journeys.activities.codec import EncryptionCodec

__all__ = [
    "ENV_PREFIX",
    "SANDBOX_SECRETS",
    "SECRET_SETTINGS",
    "WEBHOOK_SECRETS",
    "Settings",
    "default_data_dir",
    "dev_settings",
    "load_settings",
    "secret_problem",
    "without_password",
]

ENV_PREFIX = "JOURNEYS_"
SECRET_SETTINGS = ("api_key", "inbox_token_secret", "sandbox_api_key", "sandbox_webhook_secret")
WEBHOOK_SECRETS = ("api_key",)  # what `journeys webhooks` needs (and provider_secrets; the inbox secret if set)
SANDBOX_SECRETS = ("sandbox_api_key", "sandbox_webhook_secret")
# Variables with the prefix that are not settings but are read elsewhere (the test suite).
_NOT_SETTINGS_PREFIXES = ("JOURNEYS_TEST_",)


class Settings(
    TemporalSettings,
    DatabaseSettings,
    RoutingSettings,
    SandboxSettings,
    BizgoSettings,
    FcmSettings,
    WebPushSettings,
    SmtpSettings,
    WebhookChannelSettings,
    WebhookAppSettings,
    PolicyConfig,
    JourneySettings,
    OperatorSettings,
    BaseSettings,
):
    """Everything a deployment configures (env prefix ``JOURNEYS_``); each base is one area."""

    # Unknown names are ignored here, because a .env may be shared with other programs;
    # load_settings reports a JOURNEYS_ name that is no setting, in the environment or in .env.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _plugins_first(cls, data: Any) -> Any:
        # A shop's channels and providers must be registered before routes naming them are read.
        if isinstance(data, dict) and isinstance(data.get("plugins"), list):
            try:
                _import_plugins([str(name) for name in data["plugins"]])
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return data

    def __repr_args__(self) -> Any:
        # The database URL may carry a password: never in a repr, a log or a traceback.
        for name, value in super().__repr_args__():
            yield name, (without_password(value) if name == "database_url" else value)

    def require_secrets(self, *names: str) -> None:
        """Refuse to go on unless each named secret is set, long enough and not a known value.

        Raises:
            ConfigError: one line naming the first bad setting and what to do.
        """
        for name in names:
            problem = secret_problem(getattr(self, name).get_secret_value())
            if problem:
                raise ConfigError(
                    f"JOURNEYS_{name.upper()} {problem}: set it to a random value of at least "
                    f"{MIN_SECRET_BYTES} bytes, e.g. the output of "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )

    def codec(self) -> EncryptionCodec | None:
        """The payload codec of ``codec_keys`` (None: payloads are not encrypted).

        Raises:
            ConfigError: the keys do not parse (one line naming the setting, never a key).
        """
        from durable_journeys.activities.codec import EncryptionCodec  # here: the settings load no Temporal client

        value = self.codec_keys.get_secret_value()
        return EncryptionCodec.from_setting(value) if value.strip() else None

    def policy(self, journeys: Sequence[str] | None = None) -> PolicyConfig:
        """The contact policy (the settings' own policy fields).

        Raises:
            ConfigError: ``journey_priority`` names a journey that is not among ``journeys``.
        """
        if journeys is not None:
            unknown = [j for j in self.journey_priority if j not in journeys]
            if unknown:
                raise ConfigError(
                    f"JOURNEYS_JOURNEY_PRIORITY names {unknown[0]!r}, which is no journey; "
                    f"use some of {', '.join(journeys)}, highest priority first"
                )
        return PolicyConfig.model_validate({name: getattr(self, name) for name in PolicyConfig.model_fields})


def _import_plugins(names: Sequence[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - ImportError, or an error in the shop's module: one line either way
            raise ConfigError(
                f"JOURNEYS_PLUGINS names {name!r}, which does not import ({type(exc).__name__}); "
                "install the shop's package or put it on PYTHONPATH"
            ) from None


def _plugin_variables() -> set[str]:
    """The variables of plug-ins whose settings are not part of :class:`Settings` (a shop's own)."""
    names: set[str] = set()
    for plugin in provider_plugins().values():
        if issubclass(Settings, plugin.settings):
            continue
        prefix = str(plugin.settings.model_config.get("env_prefix", "")).upper()
        names |= {f"{prefix}{field.upper()}" for field in plugin.settings.model_fields}
    return names


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment and ``.env``, or one line that names what is wrong.

    The modules ``JOURNEYS_PLUGINS`` names are imported first, so their channels and providers
    may be routed and their variables are known.

    Raises:
        ConfigError: a ``JOURNEYS_`` variable that is no setting (a typo), a plug-in that does not
            import, or a value that does not parse; the message names the variable and never shows
            a secret's value.
    """
    environ = os.environ if environ is None else environ
    dotenv = Path(".env")
    values = {**(dotenv_values(dotenv) if dotenv.is_file() else {}), **environ}
    try:
        plugins = RoutingSettings.model_validate({"plugins": _json(values.get(f"{ENV_PREFIX}PLUGINS"))}).plugins
    except (ValueError, ValidationError):
        raise ConfigError(
            "JOURNEYS_PLUGINS must be a JSON list of module names, e.g. JOURNEYS_PLUGINS='[\"shop.fax\"]'"
        ) from None
    _import_plugins(plugins)
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | _plugin_variables()
    sources = [(name, "") for name in environ]
    if dotenv.is_file():
        sources += [(name, " in .env") for name in dotenv_values(dotenv)]
    for raw, where in sorted(sources):
        name = raw.upper()
        if name.startswith(ENV_PREFIX) and name not in known and not name.startswith(_NOT_SETTINGS_PREFIXES):
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else "; every command's --help lists the settings it reads"
            raise ConfigError(f"{raw}{where} is not a setting{hint}")
    try:
        return Settings()
    except SettingsError as exc:  # a value that is not JSON where a setting takes JSON
        found = re.search(r'field "(\w+)"', str(exc))
        name = f"{ENV_PREFIX}{found.group(1).upper()}" if found else "a JOURNEYS_ setting"
        raise ConfigError(f'{name} is not valid JSON; e.g. JOURNEYS_ROUTES=\'{{"alimtalk": ["bizgo"]}}\'') from None
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        name = f"{ENV_PREFIX}{field.upper()}"
        raise ConfigError(f"{name}: {first['msg']}; fix it in the environment or .env") from None


def _json(raw: str | None) -> Any:
    return json.loads(raw) if raw else []


def dev_settings(base: Settings | None = None) -> Settings:
    """Settings for an explicit development mode (demo, ``journeys dev``, test fixtures).

    Each secret that ``base`` leaves unset is a fresh random one for this run, so no development
    process ever runs on a public default. A secret that was given is kept, and one that cannot
    serve is refused: replacing it without a word would leave its caller with 401s and no hint.

    Raises:
        ConfigError: a given secret is short, not random or a known value (one line naming it).
    """
    base = base or Settings()
    given = [name for name in SECRET_SETTINGS if getattr(base, name).get_secret_value().strip()]
    base.require_secrets(*given)
    fresh = {name: SecretStr(secrets.token_urlsafe(32)) for name in SECRET_SETTINGS if name not in given}
    return base.model_copy(update=fresh)
