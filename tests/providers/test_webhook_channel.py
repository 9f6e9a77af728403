"""The webhook channel: each message POSTed to the shop, verified with ``standardwebhooks``' own verifier."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from durable_journeys.providers import Channel, ConfigError, ErrorClass, OutboundMessage, SendStatus
from durable_journeys.providers.webhook_channel.provider import SignedWebhookProvider, webhook_id

SECRET = "whsec_" + base64.b64encode(b"the shop's webhook secret, 32 bytes").decode()
URL = "https://shop.example/journeys/messages"


def message(**values: Any) -> OutboundMessage:
    return OutboundMessage(
        **{
            "channel": Channel.WEBHOOK,
            "to": "c-42",
            "body": "김하늘님, 주문이 출발했습니다.",
            "idempotency_key": "post-purchase:A-1001:shipping_started:webhook",
            "workflow_id": "post-purchase:A-1001",
            "step": "shipping_started",
        }
        | values
    )


class Shop:
    """The shop's endpoint: verifies each request with the package's verifier, answers ``status``."""

    def __init__(self, status: int = 204, headers: dict[str, str] | None = None) -> None:
        self.status, self.headers = status, headers or {}
        self.received: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        try:
            payload = Webhook(SECRET).verify(request.content, dict(request.headers))
        except WebhookVerificationError:
            return httpx.Response(401)
        self.received.append((request.headers["webhook-id"], payload))
        return httpx.Response(self.status, headers=self.headers)


def provider(shop: Any, secret: str = SECRET) -> SignedWebhookProvider:
    return SignedWebhookProvider(httpx.AsyncClient(transport=httpx.MockTransport(shop)), url=URL, secret=secret)


async def test_a_message_is_posted_signed_and_verifies() -> None:
    shop = Shop()
    result = await provider(shop).send(message())
    assert result.status is SendStatus.ACCEPTED
    [(msg_id, payload)] = shop.received
    assert msg_id == webhook_id("post-purchase:A-1001:shipping_started:webhook") == result.provider_message_id
    assert payload["type"] == "journey.message"
    assert payload["data"] == {
        "channel": "webhook",
        "purpose": "informational",
        "to": "c-42",
        "subject": None,
        "body": "김하늘님, 주문이 출발했습니다.",
        "reference": "post-purchase:A-1001:shipping_started:webhook",
        "workflow_id": "post-purchase:A-1001",
        "step": "shipping_started",
    }


async def test_every_attempt_of_a_message_has_the_same_id_so_the_shop_drops_repeats() -> None:
    shop = Shop()
    p = provider(shop)
    await p.send(message())
    await p.send(message())
    await p.send(message(idempotency_key="post-purchase:A-1002:shipping_started:webhook"))
    ids = [i for i, _ in shop.received]
    assert ids[0] == ids[1] != ids[2]


async def test_a_signature_with_another_secret_does_not_verify() -> None:
    other = "whsec_" + base64.b64encode(b"another secret entirely, 32 byte").decode()
    result = await provider(Shop(), secret=other).send(message())
    assert (result.status, result.error_class) == (SendStatus.REJECTED, ErrorClass.CONFIG)  # the shop said 401


def test_a_tampered_body_does_not_verify() -> None:
    body, headers = provider(Shop()).request(message())
    tampered = json.dumps(json.loads(body) | {"type": "something.else"}).encode()
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, headers)


@pytest.mark.parametrize(
    ("status", "headers", "expected", "outcome"),
    [
        (429, {"retry-after": "5"}, ErrorClass.RETRY, SendStatus.REJECTED),
        (503, {}, ErrorClass.RETRY, SendStatus.REJECTED),
        (500, {}, ErrorClass.UNKNOWN, SendStatus.UNKNOWN),
        (404, {}, ErrorClass.CONFIG, SendStatus.REJECTED),
        (410, {}, ErrorClass.RECIPIENT_DEAD, SendStatus.REJECTED),
        (422, {}, ErrorClass.REQUEST, SendStatus.REJECTED),
    ],
)
async def test_answers_are_classed_by_status(
    status: int, headers: dict[str, str], expected: ErrorClass, outcome: SendStatus
) -> None:
    result = await provider(Shop(status, headers)).send(message())
    assert (result.status, result.error_class) == (outcome, expected)


async def test_transport_failures() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    assert (await provider(refuse).send(message())).error_class is ErrorClass.RETRY
    assert (await provider(drop).send(message())).status is SendStatus.UNKNOWN


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_%%%not-base64%%%"])
def test_an_unusable_secret_is_a_config_error(secret: str) -> None:
    with pytest.raises(ConfigError, match="JOURNEYS_WEBHOOK_CHANNEL_SECRET"):
        provider(Shop(), secret=secret)
