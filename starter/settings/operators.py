"""Operators' settings: payload encryption and its codec server, metrics, shutdown, logging."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, SecretStr

# What one message costs, KRW before VAT, by message type (SMS and LMS apart) or channel: the
# report's cost columns. List prices of Korean bulk-messaging resellers in 2026; set your contract's.
DEFAULT_PRICES: dict[str, float] = {
    "sms": 9.9,
    "lms": 30.0,
    "alimtalk": 7.5,
    "brand_message": 15.0,
    "rcs": 12.0,
    "push": 0.0,
    "web_push": 0.0,
    "in_app": 0.0,
    "email": 0.5,
    "webhook": 0.0,
}


class OperatorSettings(BaseModel):
    """``JOURNEYS_CODEC_...``, ``JOURNEYS_*METRICS_PORT``, ``JOURNEYS_LOG_...``, graceful shutdown."""

    # Payload encryption (id:base64key,... the first encrypts; see activities/codec.py), the codec
    # server the Temporal UI decodes through, and Prometheus metrics (0: not served).
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
    message_prices: dict[Annotated[str, Field(max_length=32)], Annotated[float, Field(ge=0, le=100_000)]] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        max_length=50,
        description="KRW per message by type (sms, lms) or channel, for the report's cost; unlisted: 0",
    )
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(lambda v: str(v).upper())
    ] = "INFO"
