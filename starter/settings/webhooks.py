"""The webhook app's settings: its keys, body and rate limits, the links callers may pass, its docs."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, SecretStr


class WebhookAppSettings(BaseModel):
    """``JOURNEYS_API_KEY``, ``JOURNEYS_INBOX_TOKEN_SECRET``, the limits of ``/events`` and receipts, links."""

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
