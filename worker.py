"""Composition root: settings -> store -> provider registry -> Temporal worker.

Run it with ``journeys worker``. Every setting comes from the environment with the
``JOURNEYS_`` prefix (or a ``.env`` file), e.g. ``JOURNEYS_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import importlib
import os
import re
import secrets
import signal
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import httpx
import structlog
from dotenv import dotenv_values
from pydantic import BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode, TLSConfig
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from durable_journeys.activities import PolicyConfig, SendActivities, Store, TemplateRegistry
from durable_journeys.activities.codec import EncryptionCodec, data_converter
from durable_journeys.activities.inbox import InboxProvider
from durable_journeys.activities.logs import configure_logging
from durable_journeys.activities.metrics import serve_metrics
from durable_journeys.activities.policy import mark_advertising
from durable_journeys.activities.templates import PACKAGED_DIR, check_templates, load_templates
from durable_journeys.providers import Channel, ConfigError, Provider, ProviderRegistry, ReceiptMode
from durable_journeys.workflows import ALL_WORKFLOWS, TASK_QUEUE, JourneyWorkflow

if TYPE_CHECKING:  # the vendors' SDKs load when a provider is built, not with the settings or the facade
    from bizgo import AsyncBizgo

    from durable_journeys.providers.fcm import ServiceAccount
    from durable_journeys.providers.sandbox import SandboxConfig

log = structlog.get_logger("worker")

ProviderName = Literal["sandbox", "inbox", "bizgo", "fcm", "webpush", "smtp", "webhook"]

# A secret shorter than this (in UTF-8 bytes) can be guessed or was typed by hand.
MIN_SECRET_BYTES = 32
MIN_SECRET_DISTINCT = 10  # "a" * 40 or "0123" * 10 is long, not random
# Values that have been public defaults or that people type when asked for a secret.
KNOWN_DEV_SECRETS = frozenset(
    {
        "sandbox-key",
        "sandbox-webhook-secret",
        "dev-api-key",
        "dev-inbox-secret",
        "changeme",
        "change-me",
        "secret",
        "password",
        "test",
        "dev",
        "development",
        "example",
    }
)
SECRET_SETTINGS = ("api_key", "inbox_token_secret", "sandbox_api_key", "sandbox_webhook_secret")
WEBHOOK_SECRETS = ("api_key",)  # what `journeys webhooks` needs (and provider_secrets; the inbox secret if set)
SANDBOX_SECRETS = ("sandbox_api_key", "sandbox_webhook_secret")

# The workflow sandbox re-imports and checks the journeys' code for every run (a datetime.now() or
# an I/O call in a journey fails its workflow task). Passed through, imported once and shared,
# is only what holds data and no journey logic: pydantic, and the pure contract and model modules
# (rebuilding every pydantic model per run was most of a cached journey's memory and CPU).
# bench/ measures what the checks cost (`python -m bench`, "sandbox").
PASSED_THROUGH = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "durable_journeys.providers.base",
    "durable_journeys.providers.channels",
    "durable_journeys.activities.contracts",
    "durable_journeys.activities.masking",
    "durable_journeys.workflows.constants",
    "durable_journeys.workflows.models",
)
RESTRICTIONS = SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)


class Settings(BaseSettings):
    """Everything a deployment configures (env prefix ``JOURNEYS_``)."""

    # Unknown names are ignored here, because a .env may be shared with other programs;
    # load_settings reports a JOURNEYS_ name that is no setting, in the environment or in .env.
    model_config = SettingsConfigDict(env_prefix="JOURNEYS_", env_file=".env", extra="ignore")

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_tls: bool = False
    # A cluster or Temporal Cloud: mTLS files, or an API key (TLS on by default then); or a profile
    # of Temporal's own environment configuration (the TOML file the `temporal` CLI uses, and its
    # TEMPORAL_* variables), which the settings above override where they are set.
    temporal_tls_client_cert: Path | None = None
    temporal_tls_client_key: Path | None = None
    temporal_tls_server_ca: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr = SecretStr("")
    temporal_profile: str | None = Field(default=None, description="profile of Temporal's envconfig TOML")
    temporal_config_file: Path | None = Field(default=None, description="that TOML file, if not the default")
    task_queue: str = TASK_QUEUE

    # One place for local state, the same for every process whatever its working directory.
    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    database_url: str = Field(default="", description="default: SQLite file journeys.db in data_dir")
    database_connect_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    # Secrets have no usable default: outside `journeys demo`, `journeys dev` and the test
    # fixtures (which make random ones per run) each must be set, or the process refuses to start.
    sandbox_url: str = "http://127.0.0.1:8600"
    sandbox_api_key: SecretStr = SecretStr("")
    sandbox_webhook_secret: SecretStr = SecretStr("")
    provider_timeout_seconds: float = Field(default=10.0, gt=0)
    # Which provider sends each channel, e.g. {"alimtalk": ["bizgo"], "sms": ["bizgo"]} (JSON);
    # a channel not listed goes to default_provider ("none": it has no provider), in_app to the inbox.
    routes: dict[Channel, list[ProviderName]] = Field(default_factory=dict)
    # A channel's next provider takes a message its provider refused for configuration at once, or
    # one it was unavailable for (known not sent) after this many attempts; never an unknown one.
    failover_after_attempts: int = Field(default=3, ge=1, le=100)
    default_provider: Literal["sandbox", "none"] = "sandbox"
    # Bizgo (Infobank): AlimTalk, Brand Message, RCS, SMS/LMS through its official SDK.
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
    # Fleet-wide send rates of other providers (JSON, e.g. {"fcm": 500}): each gets its own task queue.
    provider_sends_per_second: dict[ProviderName, Annotated[float, Field(gt=0, le=100_000)]] = Field(
        default_factory=dict
    )
    # App push: Firebase Cloud Messaging HTTP v1, with a service account key (a file path or its JSON).
    fcm_service_account: SecretStr = SecretStr("")
    # Web push: VAPID key pair of the application server (base64url private key) and its contact.
    webpush_vapid_private_key: SecretStr = SecretStr("")
    webpush_subject: str = Field(default="", description="mailto: address or https URL of the sender")
    # E-mail over SMTP.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_sender: str = Field(default="", description='the From address, e.g. "Shop <shop@example.com>"')
    smtp_unsubscribe_url: str = Field(default="", description="one-click unsubscribe URL ({ref}: the message)")
    smtp_unsubscribe_mailto: str = ""
    # A channel the shop delivers itself: messages POSTed to its endpoint, signed per Standard Webhooks.
    webhook_channel_url: str = ""
    webhook_channel_secret: SecretStr = Field(default=SecretStr(""), description="whsec_<base64>")

    api_key: SecretStr = Field(default=SecretStr(""), description="server-to-server key for /events")
    inbox_token_secret: SecretStr = Field(default=SecretStr(""), description="signs per-customer inbox tokens")
    webhook_max_body_bytes: int = Field(default=256 * 1024, gt=0, le=16 * 1024 * 1024)
    # Per caller (the peer address the webhook app sees): past these, 429 with Retry-After.
    events_per_second: float = Field(default=50.0, gt=0, le=100_000, description="/events per caller, on average")
    events_burst: int = Field(default=200, ge=1, le=1_000_000, description="/events per caller at once")
    receipts_per_second: float = Field(
        default=500.0, gt=0, le=100_000, description="receipt webhooks per provider and caller"
    )
    receipts_burst: int = Field(default=2000, ge=1, le=1_000_000)
    # Links a caller passes into messages (a cart's url, a review or sale URL given per journey)
    # must be https on one of these hosts; ".shop.example" also allows its subdomains.
    link_hosts: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=lambda: ["shop.example"], max_length=100
    )
    docs_enabled: bool = Field(default=False, description="serve /docs and /openapi.json (offline assets)")

    brand_name: str = "듀러블샵"
    opt_out_line: str = "무료수신거부 080-000-0000"
    # Contact policy: frequency caps on ads across journeys (0 turns a cap off; windows are ISO 8601
    # durations such as P7D or PT12H), duplicate content, journey priority (JSON list, highest first).
    ad_cap: int = Field(default=2, ge=0, le=1000, description="ads per customer per ad_cap_window, all channels")
    ad_cap_window: timedelta = Field(default=timedelta(days=7), gt=timedelta(0), le=timedelta(days=366))
    channel_ad_cap: int = Field(default=1, ge=0, le=1000, description="ads per customer per channel per window")
    channel_ad_cap_window: timedelta = Field(default=timedelta(days=1), gt=timedelta(0), le=timedelta(days=366))
    duplicate_window: timedelta = Field(
        default=timedelta(days=7), ge=timedelta(0), le=timedelta(days=366), description="0: duplicates allowed"
    )
    # The biennial consent notice to every customer who opted in to ads (Korea's Network Act).
    consent_notices: bool = True
    # Template files, one TOML file per journey (default: the reference journeys' packaged files).
    templates_dir: Path | None = Field(
        default=None, description="template files added to the reference journeys' (a same-named template replaces one)"
    )
    # The shop's own journeys, "module:Class" (JSON list): the worker runs them, the facade routes
    # events to them, and their templates are checked at start with the reference journeys'.
    journeys: list[Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", max_length=200)]] = Field(
        default_factory=list, max_length=50, description='your journey classes, e.g. ["shop.welcome:WelcomeJourney"]'
    )
    journey_priority: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=50)
    priority_grace: timedelta = Field(default=timedelta(minutes=10), ge=timedelta(0), le=timedelta(days=1))

    # Operators: payload encryption (id:base64key,... the first encrypts; see activities/codec.py),
    # the codec server the Temporal UI decodes through, and Prometheus metrics (0: not served).
    codec_keys: SecretStr = Field(default=SecretStr(""), description="AES-GCM keys, id:base64key,...")
    codec_server_token: SecretStr = Field(default=SecretStr(""), description="what the codec server asks callers for")
    codec_server_origins: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"],
        max_length=20,
        description="the Temporal UI's origins, allowed by CORS",
    )
    metrics_host: str = Field(default="127.0.0.1", description="interface of the /metrics endpoints")
    metrics_port: int = Field(default=0, ge=0, lt=65536, description="the worker's /metrics (0: off)")
    webhook_metrics_port: int = Field(default=0, ge=0, lt=65536, description="the webhook app's /metrics (0: off)")
    temporal_metrics_port: int = Field(
        default=0, ge=0, lt=65536, description="the Temporal SDK's own runtime metrics (0: off)"
    )

    graceful_shutdown_seconds: float = Field(default=30.0, ge=0)
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(lambda v: str(v).upper())
    ] = "INFO"

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'journeys.db'}"
        return self

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
        value = self.codec_keys.get_secret_value()
        return EncryptionCodec.from_setting(value) if value.strip() else None

    def policy(self, journeys: Sequence[str] | None = None) -> PolicyConfig:
        """The contact-policy settings.

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
        return PolicyConfig(
            brand_name=self.brand_name,
            opt_out_line=self.opt_out_line,
            ad_cap=self.ad_cap,
            ad_cap_window=self.ad_cap_window,
            channel_ad_cap=self.channel_ad_cap,
            channel_ad_cap_window=self.channel_ad_cap_window,
            duplicate_window=self.duplicate_window or None,
            journey_priority=self.journey_priority,
            priority_grace=self.priority_grace,
        )


def default_data_dir() -> Path:
    """Where local state lives unless ``JOURNEYS_DATA_DIR`` says otherwise (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "durable-journeys"


ENV_PREFIX = "JOURNEYS_"
# Variables with the prefix that are not settings but are read elsewhere (the test suite).
_NOT_SETTINGS_PREFIXES = ("JOURNEYS_TEST_",)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment and ``.env``, or one line that names what is wrong.

    Raises:
        ConfigError: a ``JOURNEYS_`` variable that is no setting (a typo), or a value that does not
            parse; the message names the variable and never shows a secret's value.
    """
    environ = os.environ if environ is None else environ
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    dotenv = Path(".env")
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


def without_password(url: Any) -> Any:
    """``url`` with its password masked (unchanged if it is not a URL)."""
    try:
        return make_url(str(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable>"


def secret_problem(value: str) -> str | None:
    """Why ``value`` cannot serve as a secret, or None if it can."""
    if not value.strip():
        return "is not set"
    if value.strip().lower() in KNOWN_DEV_SECRETS:
        return "is a known development value"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    if len(set(value)) < MIN_SECRET_DISTINCT:
        return "is not random (too few distinct characters)"
    return None


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


def setup_logging(settings: Settings) -> None:
    """Configure logging as the settings say."""
    json = None if settings.log_format == "auto" else settings.log_format == "json"
    configure_logging(json=json, level=settings.log_level)


TEMPORAL_CONNECT_SECONDS = 15.0


def _read(path: Path | None, setting: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"JOURNEYS_{setting.upper()}: cannot read {path} ({exc.strerror})") from None


def temporal_connect_config(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of ``Client.connect`` for these settings (no network).

    Precedence: a Temporal envconfig profile (when ``temporal_profile`` or ``temporal_config_file``
    is set), then every ``JOURNEYS_TEMPORAL_*`` setting that is set. mTLS files make a TLS config;
    an API key turns TLS on unless ``JOURNEYS_TEMPORAL_TLS=false`` says otherwise.

    Raises:
        ConfigError: a certificate or key cannot be read, or the profile cannot be loaded.
    """
    given = settings.model_fields_set
    config: dict[str, Any] = {"target_host": settings.temporal_address, "namespace": settings.temporal_namespace}
    if settings.temporal_profile or settings.temporal_config_file:
        try:
            loaded = ClientConfig.load_client_connect_config(
                profile=settings.temporal_profile,
                config_file=str(settings.temporal_config_file) if settings.temporal_config_file else None,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ConfigError(f"JOURNEYS_TEMPORAL_PROFILE: cannot load Temporal's profile ({exc})") from None
        config.update(loaded)
        for name, key in (("temporal_address", "target_host"), ("temporal_namespace", "namespace")):
            if name in given:
                config[key] = getattr(settings, name)
    api_key = settings.temporal_api_key.get_secret_value()
    if api_key:
        config["api_key"] = api_key
    files = (settings.temporal_tls_client_cert, settings.temporal_tls_client_key, settings.temporal_tls_server_ca)
    if any(files) or settings.temporal_tls_server_name:
        if bool(settings.temporal_tls_client_cert) != bool(settings.temporal_tls_client_key):
            raise ConfigError(
                "JOURNEYS_TEMPORAL_TLS_CLIENT_CERT and JOURNEYS_TEMPORAL_TLS_CLIENT_KEY go together: set both"
            )
        config["tls"] = TLSConfig(
            client_cert=_read(settings.temporal_tls_client_cert, "temporal_tls_client_cert"),
            client_private_key=_read(settings.temporal_tls_client_key, "temporal_tls_client_key"),
            server_root_ca_cert=_read(settings.temporal_tls_server_ca, "temporal_tls_server_ca"),
            domain=settings.temporal_tls_server_name,
        )
    elif "temporal_tls" in given or "tls" not in config:
        config["tls"] = settings.temporal_tls or (bool(api_key) and "temporal_tls" not in given)
    return config


async def connect_client(settings: Settings) -> Client:
    """A Temporal client with the pydantic data converter, encrypting payloads when ``codec_keys`` is set.

    Raises:
        ConfigError: Temporal cannot be reached (one line naming the address, the cause and the
            setting to check).
    """
    config = temporal_connect_config(settings)
    converter = data_converter(settings.codec())
    runtime = sdk_runtime(settings)
    if runtime is not None:
        config["runtime"] = runtime
    where = f"Temporal at {config['target_host']}"
    try:
        async with asyncio.timeout(TEMPORAL_CONNECT_SECONDS):
            client = await Client.connect(**config, data_converter=converter)
            await _check_namespace(client, where)
            return client
    except TimeoutError:
        raise ConfigError(
            f"{where} did not answer within {TEMPORAL_CONNECT_SECONDS:.0f} s; "
            "check JOURNEYS_TEMPORAL_ADDRESS (and JOURNEYS_TEMPORAL_TLS)"
        ) from None
    except (RuntimeError, ValueError) as exc:  # the SDK's "Failed client connect: ..."
        cause, hint = temporal_failure(str(exc), tls=bool(config.get("tls")))
        raise ConfigError(f"{where}: {cause}; {hint}") from None


async def _check_namespace(client: Client, where: str) -> None:
    """A namespace that does not exist is one line at connect, not a traceback at the first call.

    Raises:
        ConfigError: the server has no such namespace.
    """
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=client.namespace))
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise ConfigError(
                f"{where} has no namespace {client.namespace!r}: create it (`temporal operator namespace create "
                f"{client.namespace}`) or fix JOURNEYS_TEMPORAL_NAMESPACE"
            ) from None
        # Not allowed to describe it (a narrow API key): the calls themselves will say more.


_RUNTIMES: dict[tuple[str, int], Runtime] = {}


def sdk_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting the SDK's own metrics on ``temporal_metrics_port`` (None: the default runtime).

    One per address and process: a second client of the same process shares it.
    """
    if not settings.temporal_metrics_port:
        return None
    address = (settings.metrics_host, settings.temporal_metrics_port)
    if address not in _RUNTIMES:
        bind = f"{address[0]}:{address[1]}"
        _RUNTIMES[address] = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))
    return _RUNTIMES[address]


_CLOSED_OVER_TLS = "the server closed the TLS connection (it may want a client certificate, or not trust ours)"
_CHECK_CLIENT_CERT = "check JOURNEYS_TEMPORAL_TLS_CLIENT_CERT and JOURNEYS_TEMPORAL_TLS_CLIENT_KEY"
# The connection was closed under us: over TLS, most likely our client certificate; without TLS,
# most likely a server that wants TLS.
_CLOSED = ("close_notify", "broken pipe", "connection reset", "connectionreset", "connection closed", "unexpectedeof")
# (substrings of the SDK's error, lowercased; what happened; what to check), first match wins.
_TEMPORAL_FAILURES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("notvalidforname",),
        "its certificate is not valid for the server name",
        "check JOURNEYS_TEMPORAL_TLS_SERVER_NAME",
    ),
    (
        ("unknownissuer", "invalidcertificate", "certificate verify failed"),
        "its certificate is not signed by a CA we trust",
        "check JOURNEYS_TEMPORAL_TLS_SERVER_CA",
    ),
    (
        ("certificaterequired", "certificate required", "bad certificate", "alert"),
        _CLOSED_OVER_TLS,
        _CHECK_CLIENT_CERT,
    ),
    (("refused",), "connection refused", "check JOURNEYS_TEMPORAL_ADDRESS"),
    (
        ("dns error", "failed to lookup", "name or service not known", "nodename nor servname"),
        "host name not found",
        "check JOURNEYS_TEMPORAL_ADDRESS",
    ),
    (
        ("invalidcontenttype", "corrupt", "tls", "handshake", "wrong version number"),
        "TLS failed (does the server use TLS?)",
        "check JOURNEYS_TEMPORAL_TLS",
    ),
    (
        ("protocol", "http2", "h2 ", "frame"),
        "the server there does not speak Temporal's protocol (gRPC)",
        "check JOURNEYS_TEMPORAL_ADDRESS (and JOURNEYS_TEMPORAL_TLS)",
    ),
    (
        ("unauthenticated", "permission", "api key", "unauthorized"),
        "the server refused our credentials",
        "check JOURNEYS_TEMPORAL_API_KEY and JOURNEYS_TEMPORAL_NAMESPACE",
    ),
)


def temporal_failure(message: str, *, tls: bool) -> tuple[str, str]:
    """What a failed ``Client.connect`` means, and which setting to check (never the raw error).

    Args:
        message: the SDK's error.
        tls: whether the connection used TLS.
    """
    lowered = message.lower()
    if any(n in lowered for n in _CLOSED) and "invalidcertificate" not in lowered:
        if tls:
            return _CLOSED_OVER_TLS, _CHECK_CLIENT_CERT
        return "the server closed the connection (does it want TLS?)", "check JOURNEYS_TEMPORAL_TLS"
    for needles, cause, hint in _TEMPORAL_FAILURES:
        if any(n in lowered for n in needles):
            return cause, hint
    return "connection failed", "check JOURNEYS_TEMPORAL_ADDRESS (and JOURNEYS_TEMPORAL_TLS)"


def build_store(settings: Settings, *, create: bool = True) -> Store:
    """The store for the configured database.

    A new SQLite file is made readable by its owner only (it holds customers' contact details).

    Args:
        settings: the settings.
        create: make a missing SQLite file (and its directory); False for read-only commands.

    Raises:
        ConfigError: the URL does not parse or names a driver that is not installed; without
            ``create``, the SQLite file does not exist.
    """
    try:
        url = make_url(settings.database_url) if "://" in settings.database_url else None
    except ArgumentError:
        url = None
    drivers = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
    if url is not None and drivers.get(url.get_backend_name(), url.get_driver_name()) != url.get_driver_name():
        raise ConfigError(
            f"JOURNEYS_DATABASE_URL names the synchronous driver {url.drivername!r}; the store needs an async one: "
            "sqlite+aiosqlite:///path/journeys.db or postgresql+asyncpg://user@host/db"
        )
    if url is not None and url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database).expanduser()
        if not path.exists():
            if not create:
                raise ConfigError(
                    f"no store at {path}: JOURNEYS_DATABASE_URL names a file that does not exist; point it at "
                    "the worker's store (or run `journeys db upgrade` to make an empty one)"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        return Store.from_url(settings.database_url, connect_timeout=settings.database_connect_timeout_seconds)
    except (ImportError, ArgumentError) as exc:
        missing = getattr(exc, "name", None) or "its driver"
        raise ConfigError(
            f"JOURNEYS_DATABASE_URL cannot be used ({missing} is not installed or the URL does not parse); "
            "use postgresql+asyncpg://user@host/db or sqlite+aiosqlite:///path/journeys.db"
        ) from None


async def open_store(settings: Settings, *, create: bool = True) -> Store:
    """The store, connected and migrated to the newest schema (``create``: see :func:`build_store`).

    Raises:
        ConfigError: the database cannot be reached or refuses us (one line, no password).
    """
    store = build_store(settings, create=create)
    url = make_url(settings.database_url)
    where = f"database at {url.host or 'localhost'}:{url.port or 5432}" if url.host else f"database {url.database}"
    hint = "check JOURNEYS_DATABASE_URL"
    try:
        async with asyncio.timeout(settings.database_connect_timeout_seconds * 3):
            await store.migrate()
    except TimeoutError:
        await store.close()
        seconds = settings.database_connect_timeout_seconds
        raise ConfigError(f"{where} did not answer within {seconds:g} s; {hint}") from None
    except (OSError, DBAPIError) as exc:
        await store.close()
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
            raise ConfigError(f"{where} refused the connection; {hint}") from None
        raise ConfigError(f"{where} failed: {type(cause).__name__}; {hint}") from None
    return store


def sandbox_config(settings: Settings, *, webhook_url: str | None, **options: Any) -> SandboxConfig:
    """The sandbox service's configuration from the settings (its key, webhook secret, docs)."""
    from durable_journeys.providers.sandbox import SandboxConfig

    return SandboxConfig(
        api_key=settings.sandbox_api_key.get_secret_value(),
        webhook_secret=settings.sandbox_webhook_secret.get_secret_value(),
        webhook_url=webhook_url,
        docs=settings.docs_enabled,
        **options,
    )


def channel_chains(settings: Settings) -> dict[Channel, list[str]]:
    """The providers of each channel in order: ``routes``, the inbox for in-app, else ``default_provider``."""
    chains: dict[Channel, list[str]] = {}
    default = None if settings.default_provider == "none" else settings.default_provider
    for channel in Channel:
        names: list[str] = list(dict.fromkeys(settings.routes.get(channel, [])))  # in order, each once
        if not names:
            first = "inbox" if channel is Channel.IN_APP else default
            names = [first] if first else []
        if names:
            chains[channel] = names
    return chains


def channel_routes(settings: Settings) -> dict[Channel, str]:
    """The provider that sends each channel first."""
    return {channel: chain[0] for channel, chain in channel_chains(settings).items()}


def routed_providers(settings: Settings) -> set[str]:
    """The providers some channel may send through (first or as a failover)."""
    return {name for chain in channel_chains(settings).values() for name in chain}


def provider_secrets(settings: Settings, *, webhooks: bool) -> tuple[str, ...]:
    """The sandbox secrets the worker (``webhooks=False``) or the webhook app needs, as routed."""
    if "sandbox" not in routed_providers(settings):
        return ()
    return ("sandbox_webhook_secret",) if webhooks else ("sandbox_api_key",)


def provider_problem(settings: Settings, *, webhooks: bool) -> str | None:
    """What keeps a routed provider from working (one line naming the setting), or None."""
    chains = channel_chains(settings)
    routed = routed_providers(settings)
    if "bizgo" in routed:
        own = {c for c, chain in chains.items() if "bizgo" in chain}
        if not settings.bizgo_api_key.get_secret_value().strip():
            return "JOURNEYS_BIZGO_API_KEY is not set: issue a key in Bizgo's console (발송관리 > 연동관리)"
        if own & {Channel.ALIMTALK, Channel.BRAND_MESSAGE} and not settings.bizgo_sender_key:
            return "JOURNEYS_BIZGO_SENDER_KEY is not set: the Kakao channel's sender profile key"
        if own & {Channel.SMS, Channel.RCS} and not settings.bizgo_caller_number:
            return "JOURNEYS_BIZGO_CALLER_NUMBER is not set: the caller number registered with Bizgo"
        if Channel.RCS in own and not (settings.bizgo_rcs_brand_key and settings.bizgo_rcs_format_id):
            return "JOURNEYS_BIZGO_RCS_BRAND_KEY and JOURNEYS_BIZGO_RCS_FORMAT_ID must be set to send RCS"
        if webhooks and settings.bizgo_receipts == "webhook":
            problem = secret_problem(settings.bizgo_webhook_secret.get_secret_value())
            if problem == "is not set":
                return (
                    "JOURNEYS_BIZGO_WEBHOOK_SECRET is not set: Bizgo gives it on request; "
                    "no report is accepted without it"
                )
            if problem:
                return f"JOURNEYS_BIZGO_WEBHOOK_SECRET {problem}: use the secret Bizgo issued for report webhooks"
    if webhooks:
        return None  # the other providers post no receipts
    if "fcm" in routed and not settings.fcm_service_account.get_secret_value().strip():
        return "JOURNEYS_FCM_SERVICE_ACCOUNT is not set: the path of the Firebase service account key (or its JSON)"
    if "webpush" in routed and not (settings.webpush_vapid_private_key.get_secret_value() and settings.webpush_subject):
        return "JOURNEYS_WEBPUSH_VAPID_PRIVATE_KEY and JOURNEYS_WEBPUSH_SUBJECT must be set to send web push"
    if "smtp" in routed and not (settings.smtp_host and settings.smtp_sender):
        return "JOURNEYS_SMTP_HOST and JOURNEYS_SMTP_SENDER must be set to send e-mail"
    if "webhook" in routed and not (
        settings.webhook_channel_url and settings.webhook_channel_secret.get_secret_value()
    ):
        return "JOURNEYS_WEBHOOK_CHANNEL_URL and JOURNEYS_WEBHOOK_CHANNEL_SECRET must be set to use the webhook channel"
    return None


def _service_account(value: str) -> ServiceAccount:
    from durable_journeys.providers.fcm import ServiceAccount

    text = value.strip()
    return ServiceAccount.load(text if text.startswith("{") else Path(text))


def build_providers(
    settings: Settings,
    store: Store,
    *,
    sandbox_client: httpx.AsyncClient | None = None,
    bizgo_client: AsyncBizgo | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> ProviderRegistry:
    """Every configured provider, routed per channel (``routes``, ``default_provider``).

    Raises:
        ConfigError: a routed provider lacks a setting or has an unusable one (one line naming it).
    """
    from durable_journeys.providers.sandbox import SandboxProvider

    problem = provider_problem(settings, webhooks=False)
    if problem:
        raise ConfigError(problem)
    client = sandbox_client or httpx.AsyncClient(
        base_url=settings.sandbox_url, timeout=settings.provider_timeout_seconds
    )
    sandbox = SandboxProvider(
        client,
        api_key=settings.sandbox_api_key.get_secret_value(),
        webhook_secret=settings.sandbox_webhook_secret.get_secret_value(),
    )
    inbox = InboxProvider(store)
    providers: dict[str, Provider] = {sandbox.name: sandbox, inbox.name: inbox}
    routed = routed_providers(settings)
    http = http_client or httpx.AsyncClient(timeout=settings.provider_timeout_seconds, follow_redirects=False)
    if "bizgo" in routed:
        from bizgo import AsyncBizgo, Environment, RateLimit

        from durable_journeys.providers.bizgo import BizgoConfig, BizgoProvider

        providers["bizgo"] = BizgoProvider(
            bizgo_client
            or AsyncBizgo(
                settings.bizgo_api_key.get_secret_value(),
                environment=Environment[settings.bizgo_environment.upper()],
                timeout=settings.provider_timeout_seconds,
                # The SDK's limiter holds per process; the fleet-wide limit is the task queue's.
                rate_limit=RateLimit(send=settings.bizgo_sends_per_second),
                app_info=("durable-journeys", "0.1.0"),
            ),
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
    if "fcm" in routed:
        from durable_journeys.providers.fcm import FcmProvider

        providers["fcm"] = FcmProvider(http, _service_account(settings.fcm_service_account.get_secret_value()))
    if "webpush" in routed:
        from durable_journeys.providers.webpush import WebPushProvider

        providers["webpush"] = WebPushProvider(
            http,
            vapid_private_key=settings.webpush_vapid_private_key.get_secret_value(),
            subject=settings.webpush_subject,
        )
    if "smtp" in routed:
        from durable_journeys.providers.smtp import SmtpConfig, SmtpProvider

        providers["smtp"] = SmtpProvider(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.smtp_sender,
                username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value(),
                security=settings.smtp_security,
                unsubscribe_url=settings.smtp_unsubscribe_url,
                unsubscribe_mailto=settings.smtp_unsubscribe_mailto,
                timeout=settings.provider_timeout_seconds,
            )
        )
    if "webhook" in routed:
        from durable_journeys.providers.webhook_channel import SignedWebhookProvider

        providers["webhook"] = SignedWebhookProvider(
            http, url=settings.webhook_channel_url, secret=settings.webhook_channel_secret.get_secret_value()
        )
    return ProviderRegistry(providers, routes=channel_chains(settings))


def send_queues(settings: Settings, task_queue: str | None = None) -> dict[str, tuple[str, float]]:
    """Provider name -> (its task queue, sends per second) for each routed provider with a fleet-wide rate.

    A provider's contracted rate is per account, and an SDK's limiter per process; the task
    queue's ``max_task_queue_activities_per_second`` holds across every worker polling it.
    """
    rates: dict[str, float] = {"bizgo": settings.bizgo_sends_per_second}
    rates.update({str(name): rate for name, rate in settings.provider_sends_per_second.items()})
    routed = routed_providers(settings)
    base = task_queue or settings.task_queue
    return {name: (f"{base}.{name}", rate) for name, rate in sorted(rates.items()) if name in routed}


class WorkerGroup:
    """The journeys' worker and one rate-limited send worker per provider queue, started and stopped together."""

    def __init__(self, workers: Sequence[Worker]) -> None:
        """Run ``workers`` (the first is the journeys' own)."""
        self.workers = list(workers)

    async def __aenter__(self) -> WorkerGroup:
        """Start every worker."""
        started: list[Worker] = []
        try:
            for worker in self.workers:
                await worker.__aenter__()
                started.append(worker)
        except BaseException:
            for worker in reversed(started):
                await worker.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        """Stop every worker, letting in-flight sends finish (graceful shutdown)."""
        await asyncio.gather(*(w.__aexit__(*exc) for w in reversed(self.workers)))


def build_worker(
    client: Client,
    activities: SendActivities,
    *,
    task_queue: str = TASK_QUEUE,
    queues: Mapping[str, tuple[str, float]] | None = None,
    workflows: Sequence[type] = ALL_WORKFLOWS,
    graceful_shutdown: timedelta = timedelta(seconds=30),
    **worker_kwargs: Any,
) -> WorkerGroup:
    """Every journey and the send activity on ``task_queue``, plus a send worker per rate-limited provider.

    Args:
        client: the Temporal client.
        activities: the send activities.
        task_queue: the journeys' task queue.
        queues: :func:`send_queues`: provider -> (task queue, sends per second).
        workflows: the journeys to run.
        graceful_shutdown: how long in-flight sends may finish on shutdown.
        **worker_kwargs: passed to the journeys' ``Worker``.
    """
    worker_kwargs.setdefault("workflow_runner", SandboxedWorkflowRunner(restrictions=RESTRICTIONS))
    main = Worker(
        client,
        task_queue=task_queue,
        workflows=list(workflows),
        activities=[
            activities.send_message,
            activities.send_queues,
            activities.consent_clocks,
            activities.record_consent_notice,
        ],
        graceful_shutdown_timeout=graceful_shutdown,
        **worker_kwargs,
    )
    senders = [
        Worker(
            client,
            task_queue=queue,
            activities=[activities.send_message],
            max_task_queue_activities_per_second=rate,
            graceful_shutdown_timeout=graceful_shutdown,
        )
        for queue, rate in (queues or {}).values()
    ]
    return WorkerGroup([main, *senders])


def journey_classes(settings: Settings) -> list[type[JourneyWorkflow]]:
    """The reference journeys and the shop's own (``JOURNEYS_JOURNEYS``), imported and checked.

    Raises:
        ConfigError: an entry whose module does not import, or that names no journey class (one line).
    """
    found: list[type[JourneyWorkflow]] = list(ALL_WORKFLOWS)
    for path in settings.journeys:
        module_name, _, name = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - ImportError, or an error in the shop's module: one line either way
            raise ConfigError(
                f"JOURNEYS_JOURNEYS names {path!r}, whose module does not import ({type(exc).__name__}); "
                "install the shop's package or put it on PYTHONPATH"
            ) from None
        journey = getattr(module, name, None)
        if not (isinstance(journey, type) and issubclass(journey, JourneyWorkflow)) or not hasattr(
            journey, "__temporal_workflow_definition"
        ):
            raise ConfigError(
                f"JOURNEYS_JOURNEYS names {path!r}, which is no journey: "
                "a @workflow.defn class extending JourneyWorkflow"
            )
        if journey not in found:
            taken = next((j for j in found if j.journey == journey.journey), None)
            if taken is not None:
                raise ConfigError(
                    f"JOURNEYS_JOURNEYS names {path!r}, whose journey name {journey.journey!r} another journey has"
                )
            found.append(journey)
    return found


def required_templates(workflows: Sequence[type[JourneyWorkflow]] = ALL_WORKFLOWS) -> dict[str, set[Channel]]:
    """Template code -> the channels the journeys send it on (from each journey's ``steps``)."""
    required: dict[str, set[Channel]] = {}
    for journey in workflows:
        for channels, code in journey.steps.values():
            required.setdefault(code, set()).update(channels)
    return required


def template_problems(
    settings: Settings, workflows: Sequence[type[JourneyWorkflow]] = ALL_WORKFLOWS
) -> tuple[TemplateRegistry | None, list[str]]:
    """The template files of ``settings`` loaded, and every problem with them (one line each)."""
    try:
        registry = load_templates(settings.templates_dir)
    except ConfigError as exc:
        return None, [str(exc)]
    policy = settings.policy()

    def decorate(body: str, channel: Channel, purpose: Any) -> str:
        return mark_advertising(body, channel, purpose, policy)

    return registry, check_templates(registry, decorate, required=required_templates(workflows))


def journey_templates(
    settings: Settings, workflows: Sequence[type[JourneyWorkflow]] = ALL_WORKFLOWS
) -> TemplateRegistry:
    """The template files of ``settings``, checked: what the worker and the starter send from.

    Raises:
        ConfigError: one line with the first problem (``journeys templates check`` lists them all).
    """
    registry, problems = template_problems(settings, workflows)
    if problems or registry is None:
        where = settings.templates_dir or PACKAGED_DIR
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(
            f"JOURNEYS_TEMPLATES_DIR ({where}): {problems[0]}{more}; `journeys templates check` lists every problem"
        )
    return registry


def build_activities(
    settings: Settings,
    store: Store,
    providers: ProviderRegistry,
    templates: TemplateRegistry | None = None,
    *,
    task_queue: str | None = None,
) -> SendActivities:
    """The send activities with their dependencies (and the rate-limited providers' queues)."""
    return SendActivities(
        store,
        providers,
        templates or journey_templates(settings),
        settings.policy(),
        send_queues={name: queue for name, (queue, _) in send_queues(settings, task_queue).items()},
        failover_after=settings.failover_after_attempts,
    )


async def run_worker(settings: Settings) -> None:
    """Run a worker until SIGINT or SIGTERM, then let in-flight sends finish.

    Raises:
        ConfigError: a secret the worker needs is unset, short or a known development value.
    """
    settings.require_secrets(*provider_secrets(settings, webhooks=False))
    problem = provider_problem(settings, webhooks=False)  # before connecting: the cheaper mistake first
    if problem:
        raise ConfigError(problem)
    workflows = journey_classes(settings)  # the shop's own journeys too
    settings.policy([w.journey for w in workflows])  # a misspelt journey priority
    templates = journey_templates(settings, workflows)  # a template file's mistake stops the worker, not a journey
    client = await connect_client(settings)
    store = await open_store(settings)
    providers = build_providers(settings, store)
    worker = build_worker(
        client,
        build_activities(settings, store, providers, templates),
        task_queue=settings.task_queue,
        queues=send_queues(settings),
        workflows=workflows,
        graceful_shutdown=timedelta(seconds=settings.graceful_shutdown_seconds),
    )
    if settings.metrics_port:
        serve_metrics(settings.metrics_port, settings.metrics_host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker.started",
        task_queue=settings.task_queue,
        address=settings.temporal_address,
        send_queues={name: f"{queue} ({rate:g}/s)" for name, (queue, rate) in send_queues(settings).items()},
    )
    async with worker:
        await stop.wait()
        log.info("worker.stopping")
    await store.close()
