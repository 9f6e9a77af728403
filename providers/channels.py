"""Channels and their traits: one :class:`ChannelSpec` per channel, registered in one line.

A channel is a way to reach a customer (AlimTalk, SMS, app push, e-mail ...). What the rest of
the pack needs to know about one lives in its spec: where its address comes from in the
customer's profile, which of Korea's advertising rules apply to it (the ``(광고)`` mark and
opt-out line, quiet hours, consent), whether its text is counted in cp949 bytes, and how
templates for it are checked. The policy, the send activity, the template checks and the
consent notice read the spec; none of them lists channels.

A shop adds a channel of its own from its own code::

    from durable_journeys.providers.channels import ChannelSpec, register_channel

    LINE = register_channel(ChannelSpec("line", label="LINE"))  # address: profile.addresses["line"]

and routes it to a provider (``providers.plugins``). The built-in channels are registered at
the bottom of this module. Nothing here imports Temporal or any I/O library.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol, TypeVar

NAME_PATTERN = r"^[a-z][a-z0-9_]{1,31}$"
"""A channel's or a provider plug-in's name (and a key of ``CustomerProfile.addresses``)."""
CHANNEL_NAME = re.compile(NAME_PATTERN)


class Channel(StrEnum):
    """A way to reach a customer: the built-in channels, and any registered with :func:`register_channel`."""

    ALIMTALK = "alimtalk"
    BRAND_MESSAGE = "brand_message"
    RCS = "rcs"
    SMS = "sms"  # SMS or LMS, chosen by the body's cp949 byte length
    PUSH = "push"
    WEB_PUSH = "web_push"
    IN_APP = "in_app"
    EMAIL = "email"
    WEBHOOK = "webhook"

    @classmethod
    def _missing_(cls, value: object) -> Channel | None:
        # A registered channel is a member from its registration on (see _add_member), found here
        # by validators that cached the members before it was registered; anything else is refused.
        return cls._value2member_map_.get(value) if isinstance(value, str) else None  # type: ignore[return-value]


class AdRule(StrEnum):
    """How an advertising message may go out on a channel (Korea's Information and Communications Network Act)."""

    MARKED = "marked"  # starts with (광고) and the sender's name, ends with the free opt-out line
    UNMARKED = "unmarked"  # allowed as it is (e-mail carries the mark in its subject and footer)
    FORBIDDEN = "forbidden"  # informational messages only (AlimTalk)


class Reachable(Protocol):
    """What a channel may read from a customer's profile to find the address (``CustomerProfile`` has it)."""

    @property
    def customer_id(self) -> str: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...
    @property
    def push_tokens(self) -> Sequence[str]: ...
    @property
    def dead_addresses(self) -> Sequence[str]: ...
    @property
    def addresses(self) -> Mapping[str, str]: ...


def _own_address(name: str) -> Callable[[Reachable], str | None]:
    def address(profile: Reachable) -> str | None:
        value = profile.addresses.get(name)
        return value if value and value not in profile.dead_addresses else None

    return address


@dataclass(frozen=True)
class ChannelSpec:
    """A channel's traits.

    Args:
        name: the channel's name in routes, templates, journeys and the message log
            (lower case, ``[a-z][a-z0-9_]{1,31}``).
        label: what a customer calls it (the consent notice names the channel so).
        address: the customer's address on it, from the profile, or None when there is none;
            default: ``profile.addresses[name]`` unless the provider reported it dead.
        phone: a Korean phone number is the address; text must be encodable in cp949 and a
            gateway provider may chain it with the other phone channels.
        sms: the body's cp949 length chooses SMS or LMS.
        advertising: how an ad goes out (:class:`AdRule`).
        quiet_hours: an ad waits out the night (21:00-08:00 KST) without the customer's night consent.
        consent: an ad needs the customer's opt-in on this channel (and its biennial notice).
        max_chars: the longest text the channel carries (checked on templates), if any.
        provider_template: the provider needs its own approved template code (``template_code``).
        subject: a template must give a subject.
        html: a template may give an HTML body.
        preview_address: the address ``journeys templates preview`` shows.
    """

    name: str
    label: str = ""
    address: Callable[[Reachable], str | None] | None = None
    phone: bool = False
    sms: bool = False
    advertising: AdRule = AdRule.MARKED
    quiet_hours: bool = True
    consent: bool = True
    max_chars: int | None = None
    provider_template: bool = False
    subject: bool = False
    html: bool = False
    preview_address: str = "010-0000-0000"
    module: str = field(default="", compare=False)

    def address_of(self, profile: Reachable) -> str | None:
        """The customer's address on this channel (None: the channel cannot reach them)."""
        return (self.address or _own_address(self.name))(profile)


_SPECS: dict[str, ChannelSpec] = {}


class _Registered(Protocol):
    @property
    def module(self) -> str: ...


R = TypeVar("R", bound=_Registered)


def caller_module(depth: int = 2) -> str:
    """The module that called the function that calls this (the one registering a channel or provider)."""
    return str(sys._getframe(depth).f_globals.get("__name__", ""))


def claim(registry: dict[str, R], kind: str, name: str, item: R) -> R:
    """Put ``item`` in ``registry`` under ``name`` once; the same module may claim it again (a no-op).

    A journey module is imported again for each workflow run by the sandbox, so registering twice
    from one module must be harmless; from another module it is a clash.

    Raises:
        ValueError: another module registered ``name``.
    """
    known = registry.get(name)
    if known is not None and known.module != item.module:
        raise ValueError(f"{kind} {name!r} is registered already (by {known.module or 'the pack'})")
    return registry.setdefault(name, item)


def _add_member(name: str) -> Channel:
    existing = Channel._value2member_map_.get(name)
    if existing is not None:
        return existing  # type: ignore[return-value]
    member = str.__new__(Channel, name)
    member._name_ = name.upper()
    member._value_ = name
    Channel._value2member_map_[name] = member
    Channel._member_map_[name.upper()] = member
    Channel._member_names_.append(name.upper())
    return member


def register_channel(spec: ChannelSpec) -> Channel:
    """Make ``spec`` a channel and return it; the one line that adds a channel.

    Registering the same name again from the same module returns the channel (see :func:`claim`).

    Raises:
        ValueError: the name is malformed or another module registered it.
    """
    if not spec.module:
        spec = replace(spec, module=caller_module())
    if not CHANNEL_NAME.fullmatch(spec.name):
        raise ValueError(f"channel name {spec.name!r} must be lower case letters, digits and _ (2-32, a letter first)")
    claim(_SPECS, "channel", spec.name, spec)
    return _add_member(spec.name)


def channel_spec(channel: str) -> ChannelSpec:
    """The spec of ``channel``.

    Raises:
        KeyError: no such channel is registered.
    """
    return _SPECS[str(channel)]


def channels() -> list[Channel]:
    """Every registered channel, built-in first, in the order registered."""
    return [Channel(name) for name in _SPECS]


def _phone(profile: Reachable) -> str | None:
    return profile.phone


def _email(profile: Reachable) -> str | None:
    return profile.email


def _by_id(profile: Reachable) -> str | None:
    return profile.customer_id  # the shop's own systems know the customer by id


def subscription(address: str) -> dict[str, Any] | None:
    """The Web Push subscription JSON in a push token, or None if the token is not one (an app's FCM token)."""
    if not address.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(address)
    except ValueError:
        return None
    keys = value.get("keys") if isinstance(value, dict) else None
    if not (
        isinstance(value.get("endpoint"), str)
        and isinstance(keys, dict)
        and isinstance(keys.get("p256dh"), str)
        and isinstance(keys.get("auth"), str)
    ):
        return None
    return {"endpoint": value["endpoint"], "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]}}


def _push_token(web: bool) -> Callable[[Reachable], str | None]:
    # A browser's subscription (JSON) is a web push address; any other token is an app's.
    def address(profile: Reachable) -> str | None:
        live = [
            t for t in profile.push_tokens if t not in profile.dead_addresses and (subscription(t) is not None) == web
        ]
        return live[0] if live else None

    return address


KAKAO_MAX_CHARS = 1000

for _spec in (
    ChannelSpec(
        "alimtalk",
        label="카카오 알림톡",
        address=_phone,
        phone=True,
        advertising=AdRule.FORBIDDEN,
        max_chars=KAKAO_MAX_CHARS,
        provider_template=True,
    ),
    ChannelSpec("brand_message", label="카카오 브랜드메시지", address=_phone, phone=True, max_chars=KAKAO_MAX_CHARS),
    ChannelSpec("rcs", label="RCS 메시지", address=_phone, phone=True),
    ChannelSpec("sms", label="문자(SMS)", address=_phone, phone=True, sms=True),
    ChannelSpec("push", label="앱 푸시", address=_push_token(web=False), preview_address="device-token"),
    ChannelSpec("web_push", label="웹 푸시", address=_push_token(web=True), preview_address="{}"),
    ChannelSpec("in_app", label="앱 내 메시지", address=_by_id, advertising=AdRule.UNMARKED, consent=False),
    ChannelSpec(
        "email",
        label="이메일",
        address=_email,
        advertising=AdRule.UNMARKED,
        quiet_hours=False,
        subject=True,
        html=True,
        preview_address="customer@example.com",
    ),
    ChannelSpec("webhook", label="웹훅", address=_by_id, advertising=AdRule.UNMARKED),
):
    register_channel(_spec)

PHONE_CHANNELS = frozenset(c for c in channels() if channel_spec(c).phone)
"""The built-in phone channels (a gateway provider chains them)."""
