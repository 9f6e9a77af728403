"""No address, body or subject makes a provider raise: each answers with a result (a journey never wedges).

Customer data reaches providers as addresses (push tokens, browser subscriptions, e-mail
addresses) and as rendered text; hypothesis throws arbitrary strings at every provider that has
no network of its own here.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_journeys.providers import Channel, OutboundMessage, SendResult
from durable_journeys.providers.webhook_channel.provider import SignedWebhookProvider
from durable_journeys.providers.webpush.provider import WebPushProvider

ANSWER = httpx.MockTransport(lambda request: httpx.Response(201))
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
VAPID = base64.urlsafe_b64encode(bytes(range(1, 33))).decode().rstrip("=")  # a valid P-256 scalar
text = st.text(max_size=300)
subscription_like = st.builds(
    lambda endpoint, p256dh, auth: json.dumps({"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}),
    st.one_of(text, st.just("https://fcm.googleapis.com/fcm/send/x"), st.just("https://fcm.googleapis.com:99999/x")),
    text,
    text,
)


def message(channel: Channel, to: str, body: str, subject: str) -> OutboundMessage:
    return OutboundMessage(channel=channel, to=to or "x", body=body, subject=subject, idempotency_key="k:s:c")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(to=st.one_of(text, subscription_like), body=text, subject=text)
async def test_web_push_answers_every_subscription(to: str, body: str, subject: str) -> None:
    p = WebPushProvider(
        httpx.AsyncClient(transport=ANSWER), vapid_private_key=VAPID, subject="mailto:push@shop.example"
    )
    result: Any = await p.send(message(Channel.WEB_PUSH, to, body, subject))
    assert isinstance(result, SendResult)


@settings(max_examples=100, deadline=None)
@given(to=text, body=text, subject=text)
async def test_the_webhook_channel_answers_every_message(to: str, body: str, subject: str) -> None:
    p = SignedWebhookProvider(httpx.AsyncClient(transport=ANSWER), url="https://shop.example/m", secret=WHSEC)
    assert isinstance(await p.send(message(Channel.WEBHOOK, to, body, subject)), SendResult)
