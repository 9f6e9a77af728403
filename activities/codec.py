"""Payload encryption: an AES-GCM payload codec with key ids, for every client and worker.

With ``JOURNEYS_CODEC_KEYS`` set, every payload the journeys put into Temporal (inputs, template
variables, order items, event data, results, failure messages) is encrypted before it leaves the
process; the server and anyone reading its history see ciphertext. Search attributes are not
payloads: they stay readable (ids and stages only, never personal data).

Keys: ``id:base64key,id:base64key`` (16, 24 or 32 bytes each). The first key encrypts; every key
decrypts, so a key is rotated by putting a new one first and dropping the old one once no
running journey's history needs it (``journeys codec-key`` makes one). The key id rides in each
payload's metadata, never the key.

The codec runs in the client, outside the workflow sandbox: workflow modules do not import
this module or ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import secrets
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from durable_journeys.providers import ConfigError

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
MAX_KEYS = 16
SETTING = "JOURNEYS_CODEC_KEYS"


class CodecKeyError(ValueError):
    """A payload cannot be decrypted: its key id is not configured, or it was tampered with."""


def parse_keys(value: str) -> dict[str, bytes]:
    """``id:base64key,...`` as an ordered mapping (the first encrypts).

    Raises:
        ConfigError: one line naming ``JOURNEYS_CODEC_KEYS`` and what is wrong (never a key).
    """
    keys: dict[str, bytes] = {}
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if not entries:
        raise ConfigError(f"{SETTING} has no key; `journeys codec-key` makes one")
    if len(entries) > MAX_KEYS:
        raise ConfigError(f"{SETTING} has {len(entries)} keys; at most {MAX_KEYS}")
    for number, entry in enumerate(entries, 1):
        key_id, sep, encoded = entry.partition(":")
        if not sep or not KEY_ID_PATTERN.match(key_id):
            raise ConfigError(
                f"{SETTING}: key {number} is not id:base64key (an id of 1-32 letters, digits, _ . -); "
                "`journeys codec-key` makes one"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{SETTING}: key {key_id!r} is not base64") from None
        if len(key) not in (16, 24, 32):
            raise ConfigError(f"{SETTING}: key {key_id!r} is {len(key)} bytes; AES-GCM takes 16, 24 or 32 (use 32)")
        if key_id in keys:
            raise ConfigError(f"{SETTING}: key id {key_id!r} appears twice")
        keys[key_id] = key
    return keys


def new_key(key_id: str | None = None) -> str:
    """A fresh ``id:base64key`` entry (256-bit key) for ``JOURNEYS_CODEC_KEYS``."""
    chosen = key_id or f"k{secrets.token_hex(3)}"
    if not KEY_ID_PATTERN.match(chosen):
        raise ConfigError("a key id is 1-32 letters, digits, _ . -")
    return f"{chosen}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


class EncryptionCodec(PayloadCodec):
    """AES-GCM per payload: a random 96-bit nonce, the key id as associated data and in the metadata."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        """Encrypt with the first of ``keys``; decrypt with whichever a payload names."""
        if not keys:
            raise ValueError("at least one key")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.key_id = next(iter(keys))

    @classmethod
    def from_setting(cls, value: str) -> EncryptionCodec:
        """The codec of a ``JOURNEYS_CODEC_KEYS`` value.

        Raises:
            ConfigError: the value does not parse.
        """
        return cls(parse_keys(value))

    @property
    def key_ids(self) -> list[str]:
        """The configured key ids, the encrypting one first."""
        return list(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload (whole: its metadata and data) with the current key."""
        cipher, key_id = self._ciphers[self.key_id], self.key_id.encode()
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), key_id)
            encoded.append(Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed))
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt each encrypted payload; others pass unchanged (histories from before encryption).

        Raises:
            CodecKeyError: a payload's key id is not configured, or its ciphertext does not verify.
        """
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)
                continue
            raw_id = payload.metadata.get(KEY_ID, b"")
            key_id = raw_id.decode("ascii", "replace")[:32]
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise CodecKeyError(f"payload encrypted with key {key_id!r}, which is not in {SETTING}")
            data = payload.data
            try:
                plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], raw_id)
            except (InvalidTag, ValueError):
                raise CodecKeyError(f"payload under key {key_id!r} does not verify (tampered or truncated)") from None
            inner = Payload()
            inner.ParseFromString(plain)
            decoded.append(inner)
        return decoded


def with_codec(client: Client, codec: PayloadCodec | None) -> Client:
    """``client``'s connection with the journeys' data converter for ``codec`` (no new connection)."""
    config = client.config()
    config["data_converter"] = data_converter(codec)
    return Client(**config)


def data_converter(codec: PayloadCodec | None) -> DataConverter:
    """The journeys' pydantic data converter, encrypting with ``codec`` (failure messages too)."""
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
