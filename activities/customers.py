"""Customer profiles: contact addresses, app state, tier and consents."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from durable_journeys.providers import Channel, OpaqueId, PlainText
from durable_journeys.providers.channels import NAME_PATTERN

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _phone(value: str) -> str:
    if len(value) > 32:
        raise ValueError("phone must be a Korean number such as 010-1234-5678")
    digits = re.sub(r"[\s\-()]", "", value)
    if digits.startswith("+82"):
        digits = "0" + digits[3:]
    if not re.fullmatch(r"0[0-9]{8,10}", digits):
        raise ValueError("phone must be a Korean number such as 010-1234-5678")
    return digits


def _email(value: str) -> str:
    value = value.strip()
    if len(value) > 254 or not _EMAIL.match(value) or not value.isprintable():
        raise ValueError("email is not a valid address")
    return value


Phone = Annotated[str, AfterValidator(_phone)]
Email = Annotated[str, AfterValidator(_email)]


AddressValue = Annotated[PlainText, Field(min_length=1, max_length=1024)]


class CustomerProfile(BaseModel):
    """What we know about a customer; loaded at send time, never stored in workflow history.

    ``customer_id`` appears in workflow ids and search attributes, so it must be an opaque id,
    never a phone number or an email address.
    """

    model_config = ConfigDict(extra="ignore")

    customer_id: OpaqueId
    name: PlainText | None = Field(default=None, max_length=100)
    phone: Phone | None = None
    email: Email | None = None
    push_tokens: list[Annotated[PlainText, Field(min_length=1, max_length=4096)]] = Field(
        default_factory=list, max_length=10
    )
    addresses: dict[Annotated[str, Field(pattern=NAME_PATTERN)], AddressValue] = Field(
        default_factory=dict,
        max_length=10,
        description='channel -> address, for channels a shop adds (providers.channels): e.g. {"line": "U4af4..."}',
    )
    app_installed: bool = False
    tier: PlainText = Field(default="regular", max_length=32)
    marketing_consent: dict[Channel, datetime] = Field(
        default_factory=dict, description="channel -> when the customer opted in to ads there"
    )
    night_consent_at: datetime | None = Field(default=None, description="consent to ads 21:00-08:00")
    unsubscribed: bool = False
    dead_addresses: list[str] = Field(default_factory=list, description="maintained by the store")
    consent_notices: dict[Channel, datetime] = Field(
        default_factory=dict,
        description="maintained by the store: channel -> when the biennial consent notice last reached the "
        "customer (it restarts that consent's two years)",
    )

    def consent_since(self, channel: Channel) -> datetime | None:
        """When the customer's ad consent on ``channel`` was given or last confirmed by a notice; None: no consent."""
        given = self.marketing_consent.get(channel)
        if given is None:
            return None
        notified = self.consent_notices.get(channel)
        return max(given, notified) if notified is not None else given

    @model_validator(mode="after")
    def _reachable(self) -> CustomerProfile:
        if not self.phone and not self.email and not self.push_tokens and not self.addresses:
            raise ValueError("a customer needs a phone, an email, a push token or an address on an added channel")
        return self
