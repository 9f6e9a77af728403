"""The codec server: Temporal's /encode and /decode, behind a token, callable only from the UI's origin."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads

from durable_journeys.activities.codec import EncryptionCodec, new_key
from durable_journeys.starter.codec_server import MAX_BODY_BYTES, codec_app

TOKEN = "t0k3n-" + "x1y2z3" * 6
UI = "http://localhost:8233"
CODEC = EncryptionCodec.from_setting(new_key("k1"))


@pytest.fixture
async def http() -> httpx.AsyncClient:
    app = codec_app(CODEC, token=TOKEN, origins=[UI])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec") as client:
        yield client  # type: ignore[misc]


def body(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def parsed(text: str) -> list[Payload]:
    out = Payloads()
    json_format.Parse(text, out)
    return list(out.payloads)


PLAIN = Payload(metadata={"encoding": b"json/plain"}, data='{"name": "무선 이어폰", "amount": 39000}'.encode())
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("where", ["header", "path"])
async def test_encode_then_decode_round_trips_with_the_token(http: httpx.AsyncClient, where: str) -> None:
    prefix, headers = (f"/{TOKEN}", {}) if where == "path" else ("", AUTH)
    encoded = await http.post(f"{prefix}/encode", content=body(PLAIN), headers={**headers, "X-Namespace": "default"})
    assert encoded.status_code == 200
    (sealed,) = parsed(encoded.text)
    assert sealed.metadata["encoding"] == b"binary/encrypted" and "무선".encode() not in sealed.data
    decoded = await http.post(f"{prefix}/decode", content=encoded.text, headers=headers)
    assert decoded.status_code == 200 and parsed(decoded.text) == [PLAIN]


async def test_it_decodes_what_a_worker_encrypted(http: httpx.AsyncClient) -> None:
    sealed = await CODEC.encode([PLAIN])
    decoded = await http.post("/decode", content=body(*sealed), headers=AUTH)
    assert parsed(decoded.text) == [PLAIN]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/decode", {}),
        ("/decode", {"Authorization": "Bearer wrong"}),
        ("/decode", {"Authorization": f"Basic {TOKEN}"}),
        ("/decode", {"Authorization": f"Bearer {TOKEN[:-1]}"}),
        ("/wrong/decode", {}),
        (f"/{TOKEN}x/decode", {}),
        ("/encode", {}),
    ],
)
async def test_without_the_token_nothing_is_decoded(http: httpx.AsyncClient, path: str, headers: dict) -> None:
    sealed = await CODEC.encode([PLAIN])
    answer = await http.post(path, content=body(*sealed), headers=headers)
    assert answer.status_code == 401
    assert "무선" not in answer.text and TOKEN not in answer.text


async def test_cors_lets_the_ui_origin_call_and_no_other(http: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
    }
    ok = await http.options("/decode", headers={"Origin": UI, **preflight})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == UI
    assert "x-namespace" in ok.headers["access-control-allow-headers"].lower()
    evil = await http.options("/decode", headers={"Origin": "https://evil.example", **preflight})
    assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
    answer = await http.post("/decode", content=body(PLAIN), headers={"Origin": UI, **AUTH})
    assert answer.headers["access-control-allow-origin"] == UI
    other = await http.post("/decode", content=body(PLAIN), headers={"Origin": "https://evil.example", **AUTH})
    assert "access-control-allow-origin" not in other.headers  # the browser withholds the answer


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        ("not json", 400, "protobuf JSON"),
        ('{"payloads": "x"}', 400, "protobuf JSON"),
        ('{"other": 1}', 400, "protobuf JSON"),
        (
            json.dumps(
                {
                    "payloads": [
                        {
                            "metadata": {
                                "encoding": base64.b64encode(b"binary/encrypted").decode(),
                                "encryption-key-id": base64.b64encode(b'"nope').decode(),
                            },
                            "data": "AAAA",
                        }
                    ]
                }
            ),
            400,
            "which is not in JOURNEYS_CODEC_KEYS",
        ),
        ("x" * (MAX_BODY_BYTES + 1), 413, "body over"),
    ],
)
async def test_bad_requests_get_one_short_json_error(
    http: httpx.AsyncClient, content: str, status: int, message: str
) -> None:
    answer = await http.post("/decode", content=content, headers=AUTH)
    assert answer.status_code == status
    assert message in answer.json()["error"] and len(answer.text) < 300


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "journeys: JOURNEYS_CODEC_SERVER_TOKEN is not set"),
        ({"JOURNEYS_CODEC_SERVER_TOKEN": "short"}, "journeys: JOURNEYS_CODEC_SERVER_TOKEN is shorter than 32 bytes"),
        ({"JOURNEYS_CODEC_SERVER_TOKEN": TOKEN}, "journeys: JOURNEYS_CODEC_KEYS is not set"),
        (
            {"JOURNEYS_CODEC_SERVER_TOKEN": TOKEN, "JOURNEYS_CODEC_KEYS": "k1:nope!"},
            "journeys: JOURNEYS_CODEC_KEYS: key",
        ),
    ],
)
def test_the_codec_server_fails_closed_in_one_line(environ: dict[str, str], expected: str) -> None:
    from tests.starter.test_cli import journeys

    done = journeys("codec-server", "--port", "1", env=environ)
    assert done.returncode == 2 and done.stderr.startswith(expected) and done.stderr.count("\n") == 1, done.stderr
    assert "nope" not in done.stderr


def test_codec_key_prints_a_key_the_settings_take() -> None:
    from durable_journeys.activities.codec import parse_keys
    from tests.starter.test_cli import journeys

    done = journeys("codec-key", "k7")
    (key,) = parse_keys(done.stdout.strip()).values()
    assert done.returncode == 0 and done.stdout.startswith("k7:") and len(key) == 32


def test_dev_codec_keeps_its_key_in_the_data_dir(tmp_path: Path) -> None:
    import stat

    from durable_journeys.starter.dev import codec_settings
    from durable_journeys.starter.settings import Settings

    base = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    first, second = codec_settings(base), codec_settings(base)
    kept = tmp_path / "codec-keys"
    assert first.codec_keys.get_secret_value() == second.codec_keys.get_secret_value() == kept.read_text().strip()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert first.codec_server_token.get_secret_value() != second.codec_server_token.get_secret_value()
    given = codec_settings(base.model_copy(update={"codec_keys": SecretStr(new_key("mine"))}))
    assert given.codec_keys.get_secret_value().startswith("mine:")
