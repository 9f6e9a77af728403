"""Connecting to any Temporal cluster or Temporal Cloud: each form of settings builds the right
``Client.connect`` arguments (no network needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.service import TLSConfig

from durable_journeys.providers import ConfigError
from durable_journeys.starter.connect import temporal_connect_config, temporal_failure
from durable_journeys.starter.settings import Settings

KEY = "cloud-api-key-" + "x" * 30


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_a_local_server_by_default() -> None:
    assert temporal_connect_config(settings()) == {
        "target_host": "localhost:7233",
        "namespace": "default",
        "tls": False,
    }


def test_temporal_cloud_with_an_api_key_turns_tls_on() -> None:
    config = temporal_connect_config(
        settings(
            temporal_address="ns.acct.tmprl.cloud:7233", temporal_namespace="ns.acct", temporal_api_key=SecretStr(KEY)
        )
    )
    assert config == {"target_host": "ns.acct.tmprl.cloud:7233", "namespace": "ns.acct", "api_key": KEY, "tls": True}
    plain = temporal_connect_config(settings(temporal_api_key=SecretStr(KEY), temporal_tls=False))
    assert plain["tls"] is False  # said explicitly: a proxy that terminates TLS


def test_mtls_reads_certificate_key_and_ca(tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca")}
    for name, path in files.items():
        path.write_bytes(f"-----BEGIN {name}-----".encode())
    config = temporal_connect_config(
        settings(
            temporal_address="temporal.internal:7233",
            temporal_tls_client_cert=files["cert"],
            temporal_tls_client_key=files["key"],
            temporal_tls_server_ca=files["ca"],
            temporal_tls_server_name="temporal",
        )
    )
    tls = config["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert, tls.domain) == (
        b"-----BEGIN cert-----",
        b"-----BEGIN key-----",
        b"-----BEGIN ca-----",
        "temporal",
    )


@pytest.mark.parametrize(
    ("values", "names"),
    [
        (
            {"temporal_tls_client_cert": "cert.pem"},
            "JOURNEYS_TEMPORAL_TLS_CLIENT_CERT and JOURNEYS_TEMPORAL_TLS_CLIENT_KEY",
        ),
        ({"temporal_tls_server_ca": "/nonexistent/ca.pem"}, "JOURNEYS_TEMPORAL_TLS_SERVER_CA: cannot read"),
    ],
)
def test_tls_mistakes_are_one_line_naming_the_setting(values: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        temporal_connect_config(settings(**values))


def test_a_temporal_cli_profile_just_works_and_our_settings_override_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    toml = tmp_path / "temporal.toml"
    toml.write_text(
        f'[profile.prod]\naddress = "prod.acct.tmprl.cloud:7233"\nnamespace = "prod.acct"\napi_key = "{KEY}"\n'
    )
    config = temporal_connect_config(settings(temporal_profile="prod", temporal_config_file=toml))
    assert (config["target_host"], config["namespace"], config["api_key"], config["tls"]) == (
        "prod.acct.tmprl.cloud:7233",
        "prod.acct",
        KEY,
        True,
    )
    overridden = temporal_connect_config(
        settings(temporal_profile="prod", temporal_config_file=toml, temporal_namespace="staging.acct")
    )
    assert overridden["namespace"] == "staging.acct" and overridden["target_host"] == "prod.acct.tmprl.cloud:7233"


def test_the_api_key_never_shows_in_settings() -> None:
    assert KEY not in repr(settings(temporal_api_key=SecretStr(KEY)))


# What the SDK (Rust core: tonic, hyper, rustls) said in each case, as seen against the dev server
# and the mTLS front of tests/starter/test_temporal_tls.py; the same failure may read differently
# from run to run (a reset, a broken pipe or a closed connection).
_CLOSED = [
    'Status { code: Unknown, message: "transport error", source: Some(tonic::transport::Error(Transport, '
    'hyper::Error(Io, Custom { kind: UnexpectedEof, error: "peer closed connection without sending TLS '
    'close_notify: https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof" }))) }',
    'Status { code: Unknown, message: "transport error", source: Some(tonic::transport::Error(Transport, '
    "hyper::Error(Io, Kind(ConnectionReset)))) }",
    'Status { code: Cancelled, message: "operation was canceled", source: Some(tonic::transport::Error('
    'Transport, hyper::Error(Canceled, "connection closed"))) }',
    'Status { code: Unknown, message: "transport error", source: Some(tonic::transport::Error(Transport, '
    'hyper::Error(Io, Custom { kind: BrokenPipe, error: "stream closed because of a broken pipe" }))) }',
]


@pytest.mark.parametrize(
    ("raw", "tls", "setting"),
    [
        *[(raw, True, "JOURNEYS_TEMPORAL_TLS_CLIENT_CERT") for raw in _CLOSED],
        *[(raw, False, "JOURNEYS_TEMPORAL_TLS") for raw in _CLOSED],
        (
            "ConnectError(Custom { kind: InvalidData, error: InvalidCertificate(NotValidForNameContext { expected: "
            'DnsName("a.test"), presented: ["DnsName(\\"b.test\\")"] }) })',
            True,
            "JOURNEYS_TEMPORAL_TLS_SERVER_NAME",
        ),
        ("ConnectError(Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) })", True, "_SERVER_CA"),
        ("ConnectError(Custom { kind: InvalidData, error: InvalidMessage(InvalidContentType) })", True, "_TLS"),
        ("tcp connect error: Connection refused (os error 111)", False, "JOURNEYS_TEMPORAL_ADDRESS"),
        ("dns error: failed to lookup address information: Name or service not known", False, "_ADDRESS"),
        ("something nobody has seen", False, "JOURNEYS_TEMPORAL_ADDRESS"),
    ],
)
def test_every_connect_failure_names_a_setting_and_never_echoes_the_sdk(raw: str, tls: bool, setting: str) -> None:
    cause, hint = temporal_failure(f"Failed client connect: {raw}", tls=tls)
    assert setting in hint
    assert "tonic" not in cause and "Status" not in cause and "\n" not in cause + hint
