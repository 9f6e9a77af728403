"""Temporal's settings: where the server is, how to reach it securely, which task queue the journeys use."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from durable_journeys.workflows import TASK_QUEUE


class TemporalSettings(BaseModel):
    """``JOURNEYS_TEMPORAL_...`` and ``JOURNEYS_TASK_QUEUE``."""

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
