"""The worker over mutual TLS: a real client certificate, server CA and server name.

The dev server binary has no TLS options, so the test puts a TLS-terminating proxy in front of it
(Python's ``ssl``, requiring a client certificate signed by the test CA, ALPN ``h2``), as a
cluster's front end or a load balancer would. The worker connects with
``JOURNEYS_TEMPORAL_TLS_*`` settings and runs a journey through it; wrong credentials are one
line naming the settings, never a traceback.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.providers import ConfigError
from durable_journeys.starter.connect import connect_client
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.stack import embedded_stack
from tests.factories import customer, order
from tests.helpers import eventually

SERVER_NAME = "temporal.journeys.test"


@dataclass
class Pem:
    cert: Path
    key: Path


def _issue(
    directory: Path, name: str, *, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, server: bool
) -> tuple[Pem, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if issuer is None:  # a CA
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    pem = Pem(directory / f"{name}.crt", directory / f"{name}.key")
    pem.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pem, cert, key


@dataclass
class Pki:
    ca: Pem
    server: Pem
    client: Pem
    other_ca: Pem  # trusted by nobody
    stranger: Pem  # a client certificate from other_ca


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = _issue(d, "ca", issuer=None, server=False)
    server, _, _ = _issue(d, "server", issuer=(ca_cert, ca_key), server=True)
    client, _, _ = _issue(d, "client", issuer=(ca_cert, ca_key), server=False)
    other, other_cert, other_key = _issue(d, "other-ca", issuer=None, server=False)
    stranger, _, _ = _issue(d, "stranger", issuer=(other_cert, other_key), server=False)
    return Pki(ca, server, client, other, stranger)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with suppress(Exception):
            writer.close()


@pytest.fixture
async def tls_front(dev_env: WorkflowEnvironment, pki: Pki) -> AsyncIterator[str]:
    """``host:port`` of a proxy that terminates mutual TLS and forwards gRPC to the dev server."""
    upstream_host, upstream_port = dev_env.client.service_client.config.target_host.rsplit(":", 1)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca.cert))
    context.load_cert_chain(pki.server.cert, pki.server.key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    writers: list[asyncio.StreamWriter] = []

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(upstream_host, int(upstream_port))
        writers.extend((writer, up_writer))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()
        for writer in writers:  # the pipes end on their own once their connections close
            writer.close()
        await server.wait_closed()


def tls_settings(address: str, **values: object) -> Settings:
    return Settings(_env_file=None, temporal_address=address, **values)  # type: ignore[call-arg, arg-type]


async def test_a_worker_runs_a_journey_over_mutual_tls(tls_front: str, pki: Pki, tmp_path: Path) -> None:
    settings = tls_settings(
        tls_front,
        temporal_tls_client_cert=pki.client.cert,
        temporal_tls_client_key=pki.client.key,
        temporal_tls_server_ca=pki.ca.cert,
        temporal_tls_server_name=SERVER_NAME,
    )
    client = await connect_client(settings)
    async with (
        embedded_stack(
            client, database_url=f"sqlite+aiosqlite:///{tmp_path / 'tls.db'}", task_queue="tls", care_segment="off"
        ) as stack,
        stack.worker(),
    ):
        c = customer("010-1234-5678")
        handle = await stack.journeys.order_paid(order(c), c)
        try:

            async def paid_alimtalk_sent() -> bool:
                return [m["channel"] for m in stack.sandbox.messages.values()] == [Channel.ALIMTALK.value]

            await eventually(paid_alimtalk_sent, timeout=30)
            description = await handle.describe()  # read back through the same TLS connection
            assert description.id == handle.id
        finally:
            await handle.terminate("test over")


@pytest.mark.parametrize(
    ("mistake", "setting"),
    [
        ("no client certificate", "JOURNEYS_TEMPORAL_TLS_CLIENT_CERT"),
        ("a client certificate from another CA", "JOURNEYS_TEMPORAL_TLS_CLIENT_CERT"),
        ("the wrong server CA", "JOURNEYS_TEMPORAL_TLS_SERVER_CA"),
        ("the wrong server name", "JOURNEYS_TEMPORAL_TLS_SERVER_NAME"),
        ("no TLS at all", "JOURNEYS_TEMPORAL_TLS"),
        ("TLS to a server without it", "JOURNEYS_TEMPORAL_TLS"),
    ],
)
async def test_wrong_tls_credentials_are_one_line_naming_the_setting(
    dev_env: WorkflowEnvironment, tls_front: str, pki: Pki, mistake: str, setting: str
) -> None:
    address = tls_front
    values: dict[str, object] = {
        "temporal_tls_client_cert": pki.client.cert,
        "temporal_tls_client_key": pki.client.key,
        "temporal_tls_server_ca": pki.ca.cert,
        "temporal_tls_server_name": SERVER_NAME,
    }
    match mistake:
        case "no client certificate":
            del values["temporal_tls_client_cert"], values["temporal_tls_client_key"]
        case "a client certificate from another CA":
            values |= {"temporal_tls_client_cert": pki.stranger.cert, "temporal_tls_client_key": pki.stranger.key}
        case "the wrong server CA":
            values["temporal_tls_server_ca"] = pki.other_ca.cert
        case "the wrong server name":
            values["temporal_tls_server_name"] = "elsewhere.journeys.test"
        case "no TLS at all":
            values = {}
        case "TLS to a server without it":
            address = dev_env.client.service_client.config.target_host
    with pytest.raises(ConfigError) as caught:
        await connect_client(tls_settings(address, **values))
    message = str(caught.value)
    assert "\n" not in message
    assert address in message and setting in message
    assert "BEGIN" not in message and "Traceback" not in message
