"""Connecting to Temporal: the client's settings (TLS, API key, envconfig profile), and one-line diagnoses.

A refused, unreachable or misconfigured server becomes one line naming the ``JOURNEYS_TEMPORAL_...``
setting to check; the SDK's own metrics runtime is made here too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from durable_journeys.activities.codec import data_converter
from durable_journeys.providers import ConfigError
from durable_journeys.starter.settings import Settings

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
