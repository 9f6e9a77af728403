"""Channels and providers as plug-ins: registered in one line, refused when malformed or taken.

Registrations here use names of their own (``t_...``): the registry lives for the process, and
every part of the pack must take any registered channel, so they harm no other test.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from durable_journeys.activities.customers import CustomerProfile
from durable_journeys.activities.policy import PolicyConfig, check, mark_advertising
from durable_journeys.activities.templates import Template, check_template
from durable_journeys.providers import Channel, OutboundMessage, Purpose, SendResult, SendStatus
from durable_journeys.providers.channels import CHANNEL_NAME, AdRule, ChannelSpec, channel_spec, register_channel
from durable_journeys.providers.plugins import BuildContext, ProviderPlugin, provider_plugin, register_provider

BUILT_IN = [c.value for c in list(Channel)[:9]]
NIGHT = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 23:00 KST


def fresh(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class Holder(BaseModel):
    channel: Channel


def test_the_built_in_channels_keep_their_rules() -> None:
    """The traits say what the channel lists of 0.x said (no behaviour changed with the move)."""
    by = {c.value: channel_spec(c) for c in list(Channel)[:9]}
    assert BUILT_IN == ["alimtalk", "brand_message", "rcs", "sms", "push", "web_push", "in_app", "email", "webhook"]
    assert {n for n, s in by.items() if s.advertising is AdRule.MARKED} == {
        "sms",
        "brand_message",
        "rcs",
        "push",
        "web_push",
    }
    assert {n for n, s in by.items() if s.advertising is AdRule.FORBIDDEN} == {"alimtalk"}
    assert {n for n, s in by.items() if not s.quiet_hours} == {"email"}
    assert {n for n, s in by.items() if not s.consent} == {"in_app"}
    assert {n for n, s in by.items() if s.phone} == {"alimtalk", "brand_message", "rcs", "sms"}
    assert {n for n, s in by.items() if s.sms} == {"sms"}


def test_a_registered_channel_is_a_channel_everywhere() -> None:
    name = fresh()
    channel = register_channel(ChannelSpec(name, label="테스트"))
    assert channel is Channel(name) and channel.value == name and channel in list(Channel)
    assert Holder(channel=name).channel is channel  # pydantic validators built before it was registered
    assert Holder.model_validate_json(f'{{"channel": "{name}"}}').channel is channel
    assert register_channel(ChannelSpec(name, label="again")) is channel  # the same module again: a no-op
    assert channel_spec(channel).label == "테스트"


@given(st.text(min_size=1, max_size=40).filter(lambda s: not CHANNEL_NAME.fullmatch(s)))
def test_a_malformed_channel_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="channel name"):
        register_channel(ChannelSpec(name))


@pytest.mark.parametrize("name", ["sms", "email", "in_app"])
def test_another_module_cannot_take_a_channel(name: str) -> None:
    with pytest.raises(ValueError, match="registered already"):
        register_channel(ChannelSpec(name, module="shop.other"))


@pytest.mark.parametrize("name", ["t_never_registered", "SMS", "", "fax;drop"])
def test_an_unregistered_channel_is_no_channel(name: str) -> None:
    with pytest.raises(ValidationError):
        Holder(channel=name)
    with pytest.raises(ValueError):
        Channel(name)


def test_an_added_channel_s_address_comes_from_the_profile_unless_dead() -> None:
    channel = register_channel(ChannelSpec(fresh()))
    spec = channel_spec(channel)
    live = CustomerProfile(customer_id="c-1", addresses={channel.value: "U-1"})
    assert spec.address_of(live) == "U-1"
    assert spec.address_of(CustomerProfile(customer_id="c-2", phone="010-1234-5678")) is None
    assert spec.address_of(live.model_copy(update={"dead_addresses": ["U-1"]})) is None


def test_the_policy_reads_an_added_channel_s_traits() -> None:
    policy = PolicyConfig()
    consented = {"customer_id": "c-1", "phone": "010-1234-5678"}
    marked = register_channel(ChannelSpec(fresh()))
    daytime = register_channel(ChannelSpec(fresh(), quiet_hours=False, advertising=AdRule.UNMARKED))
    own = register_channel(ChannelSpec(fresh(), consent=False))
    since = NIGHT - timedelta(days=1)
    profile = CustomerProfile.model_validate({**consented, "marketing_consent": {marked: since, daytime: since}})
    assert check(profile, marked, Purpose.ADVERTISING, NIGHT, policy).reason == "quiet_hours"
    assert check(profile, daytime, Purpose.ADVERTISING, NIGHT, policy).allowed
    unconsented = CustomerProfile(customer_id="c-2", phone="010-1234-5678")
    assert check(unconsented, own, Purpose.ADVERTISING, NIGHT, policy).allowed
    assert check(unconsented, marked, Purpose.ADVERTISING, NIGHT, policy).reason == "no_marketing_consent"
    assert mark_advertising("hi", marked, Purpose.ADVERTISING, policy).startswith("(광고)")
    assert mark_advertising("hi", daytime, Purpose.ADVERTISING, policy) == "hi"


def test_the_template_checks_read_an_added_channel_s_traits() -> None:
    informational = register_channel(ChannelSpec(fresh(), advertising=AdRule.FORBIDDEN, max_chars=5, subject=True))
    template = Template(code="t", purpose=Purpose.ADVERTISING, texts={informational: "far too long"})
    problems = " | ".join(check_template(template))
    assert "informational messages only" in problems
    assert "over its 5" in problems and "needs a subject" in problems


class Toy:
    name = "t_toy"
    gateway_channels: frozenset[Channel] = frozenset()

    async def send(self, msg: OutboundMessage) -> SendResult:
        return SendResult(status=SendStatus.ACCEPTED)


class ToySettings(BaseModel):
    greeting: str = "hi"


@pytest.mark.parametrize("name", ["inbox", "none", "Fax", "x", "a-b"])
def test_a_reserved_or_malformed_provider_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="provider name"):
        register_provider(ProviderPlugin(name, ToySettings, lambda s, c: Toy()))  # type: ignore[arg-type,return-value]


def test_a_provider_plug_in_registers_its_channels_and_cannot_be_taken() -> None:
    name, channel = fresh(), fresh()
    plugin = register_provider(
        ProviderPlugin(name, ToySettings, lambda s, c: Toy(), channels=(ChannelSpec(channel),))  # type: ignore[arg-type,return-value]
    )
    assert provider_plugin(name) is plugin and Channel(channel).value == channel
    assert channel_spec(channel).module == plugin.module == __name__
    with pytest.raises(ValueError, match="registered already"):
        register_provider(ProviderPlugin(name, ToySettings, lambda s, c: Toy(), module="shop.other"))  # type: ignore[arg-type,return-value]
    built = plugin.build(plugin.settings_from(ToySettings(greeting="yo")), BuildContext(http=None, timeout=1.0))
    assert isinstance(built, Toy)


def test_a_provider_whose_channel_another_module_holds_is_not_registered() -> None:
    name = fresh()
    taken = ChannelSpec("sms", module="shop.other")  # the pack holds sms
    with pytest.raises(ValueError, match="registered already"):
        register_provider(ProviderPlugin(name, ToySettings, lambda s, c: Toy(), channels=(taken,)))  # type: ignore[arg-type,return-value]
    with pytest.raises(KeyError):
        provider_plugin(name)
