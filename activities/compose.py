"""What a message is made of: its content key, the customer's address on a channel, the rendered message."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from durable_journeys.activities.customers import CustomerProfile
from durable_journeys.activities.policy import PolicyConfig, mark_advertising
from durable_journeys.activities.templates import TemplateRegistry
from durable_journeys.providers import (
    Channel,
    OutboundMessage,
    Purpose,
    SmsKind,
    sms_kind,
)
from durable_journeys.providers.channels import channel_spec


def content_key(template: str, variables: Mapping[str, str]) -> str:
    """The key of a message's content, the same on every channel: its template and variables, hashed.

    Two sends with one key carry the same content (the same coupon, the same notice), whichever
    journey or channel sends them; the hash keeps variable values out of the message log.
    """
    canonical = json.dumps([template, sorted(variables.items())], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def channel_address(profile: CustomerProfile, channel: Channel) -> str | None:
    """The customer's address on ``channel``, as the channel's spec finds it in the profile."""
    return channel_spec(channel).address_of(profile)


def compose(
    templates: TemplateRegistry,
    policy: PolicyConfig,
    *,
    template: str,
    channel: Channel,
    purpose: Purpose,
    variables: Mapping[str, str],
    to: str,
    idempotency_key: str,
    workflow_id: str | None = None,
    step: str | None = None,
) -> OutboundMessage:
    """The message a provider gets: the template rendered, an ad decorated, SMS or LMS chosen.

    ``journeys templates render`` shows the same message.

    Raises:
        TemplateError: the template cannot be rendered for ``channel`` with ``variables``.
    """
    rendered = templates.render(template, channel, variables)
    body = mark_advertising(rendered.body, channel, purpose, policy)
    kind = sms_kind(body, rendered.subject) if channel_spec(channel).sms else None
    return OutboundMessage(
        channel=channel,
        purpose=purpose,
        to=to,
        body=body,
        subject=rendered.subject if kind is None or kind is SmsKind.LMS else None,
        html=rendered.html,
        template_code=rendered.provider_template_code,
        image_keys=rendered.image_keys,
        variables=dict(variables),
        sms_kind=kind,
        idempotency_key=idempotency_key,
        workflow_id=workflow_id,
        step=step,
    )


def effective_purpose(templates: TemplateRegistry, template: str, asked: Purpose) -> Purpose:
    """Advertising if the journey or the template file says so: a template edited into an ad is one.

    Raises:
        TemplateError: no such template.
    """
    if asked is Purpose.ADVERTISING or templates.get(template).purpose is Purpose.ADVERTISING:
        return Purpose.ADVERTISING
    return Purpose.INFORMATIONAL
