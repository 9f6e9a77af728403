"""The AES-GCM payload codec: round trips, key ids, rotation, tampering, and key settings in one line."""

from __future__ import annotations

import ast
import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload

from durable_journeys.activities.codec import ENCODING, KEY_ID, CodecKeyError, EncryptionCodec, new_key, parse_keys
from durable_journeys.providers import ConfigError
from durable_journeys.starter.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = new_key("old"), new_key("new")


def payload(data: bytes, encoding: bytes = b"json/plain") -> Payload:
    return Payload(metadata={"encoding": encoding}, data=data)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=4096), encoding=st.binary(min_size=1, max_size=40))
async def test_what_is_encoded_decodes_to_itself_and_shows_nothing(data: bytes, encoding: bytes) -> None:
    codec = EncryptionCodec.from_setting(NEW)
    original = payload(data, encoding)
    (sealed,) = await codec.encode([original])
    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID] == b"new"
    if len(data) >= 8:
        assert data not in sealed.data
    assert await codec.decode([sealed]) == [original]


async def test_the_same_payload_twice_gives_two_ciphertexts() -> None:
    codec = EncryptionCodec.from_setting(NEW)
    one, two = await codec.encode([payload(b'"\xea\xb9\x80\xed\x95\x98\xeb\x8a\x98"')] * 2)
    assert one.data != two.data


async def test_rotation_the_first_key_encrypts_and_every_key_decrypts() -> None:
    before = EncryptionCodec.from_setting(OLD)
    (old_payload,) = await before.encode([payload(b'{"amount": 39000}')])
    after = EncryptionCodec.from_setting(f"{NEW},{OLD}")
    (new_payload,) = await after.encode([payload(b'{"amount": 39000}')])
    assert new_payload.metadata[KEY_ID] == b"new"
    assert [p.data for p in await after.decode([old_payload, new_payload])] == [b'{"amount": 39000}'] * 2
    with pytest.raises(CodecKeyError, match="key 'new', which is not in JOURNEYS_CODEC_KEYS"):
        await before.decode([new_payload])  # a process not yet given the new key says so, in one line


async def test_plain_payloads_from_before_encryption_still_decode() -> None:
    plain = payload(b'"hello"')
    assert await EncryptionCodec.from_setting(NEW).decode([plain]) == [plain]


@pytest.mark.parametrize("tamper", ["data", "key_id", "truncate"])
async def test_a_tampered_payload_is_refused(tamper: str) -> None:
    both = EncryptionCodec.from_setting(f"{NEW},{OLD}")
    (sealed,) = await both.encode([payload(b'{"x": 1}')])
    if tamper == "data":
        sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    elif tamper == "key_id":
        sealed.metadata[KEY_ID] = b"old"  # the key id is authenticated: another key does not verify it
    else:
        sealed.data = sealed.data[:5]
    with pytest.raises(CodecKeyError, match="does not verify"):
        await both.decode([sealed])


KEY32 = base64.b64encode(b"k" * 32).decode()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (" , ", "JOURNEYS_CODEC_KEYS has no key"),
        (KEY32, "key 1 is not id:base64key"),
        (f"bad id:{KEY32}", "key 1 is not id:base64key"),
        (f"{'i' * 33}:{KEY32}", "key 1 is not id:base64key"),
        ("a:not base64!", "key 'a' is not base64"),
        (f"a:{base64.b64encode(b'short').decode()}", "key 'a' is 5 bytes; AES-GCM takes 16, 24 or 32"),
        (f"a:{KEY32},a:{KEY32}", "key id 'a' appears twice"),
        (",".join(f"k{i}:{KEY32}" for i in range(17)), "has 17 keys; at most 16"),
    ],
)
def test_a_bad_key_setting_is_one_line_that_never_shows_a_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Settings(_env_file=None, codec_keys=value).codec()  # type: ignore[call-arg]
    assert KEY32 not in str(caught.value) and "\n" not in str(caught.value)


def test_keys_are_kept_in_order_and_a_new_key_is_256_bits() -> None:
    assert list(parse_keys(f"{NEW}, {OLD}")) == ["new", "old"]
    (key,) = parse_keys(new_key("x")).values()
    assert len(key) == 32
    assert Settings(_env_file=None).codec() is None  # type: ignore[call-arg]


def test_no_workflow_module_imports_the_codec_or_cryptography() -> None:
    """The codec runs in clients and workers, outside the workflow sandbox."""
    for path in sorted((ROOT / "workflows").glob("*.py")):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
        assert not {m for m in imported if m.startswith(("cryptography", "durable_journeys.activities.codec"))}, (
            path.name
        )
