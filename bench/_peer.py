"""The hand-written peer: the post-purchase storyboard as a shop would write it straight on Temporal.

Written from Temporal's samples (one workflow class, one activity, dataclasses, the default data
converter), against the same sandbox provider over HTTP: AlimTalk for each transactional message,
SMS when AlimTalk is refused, fails or sends no receipt in time, the sale as an LMS. Receipts come
by signal through a minimal webhook (``python -m bench._peer webhook``) that checks the sandbox's
signature and signals the journey named in the message's reference. No store, no contact policy,
no log, no metrics, no operators' tools: what the pack does on top of this is what the bench
measures.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():  # as Temporal's samples import an activity's HTTP client
    import httpx

RECEIPT_SIGNAL = "receipt"
EVENT_SIGNAL = "order_event"


@dataclass
class PeerOrder:
    order_id: str
    phone: str
    name: str
    review_delay_seconds: float
    sale_after_seconds: float
    receipt_timeout_seconds: float


@dataclass
class PeerMessage:
    reference: str  # "<workflow id>|<step>|<channel>": the idempotency key and the receipt's address
    channel: str
    to: str
    body: str
    template_code: str | None = None
    message_type: str | None = None  # "LMS" for a long SMS


@dataclass
class PeerReceipt:
    reference: str
    status: str  # "delivered" or "failed"


class PeerActivities:
    """The one activity: POST the message to the provider with an idempotency key."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10)
        self.api_key = api_key

    @activity.defn(name="peer_send")
    async def send(self, msg: PeerMessage) -> str:
        resp = await self.http.post(
            "/v1/messages",
            json={
                "channel": msg.channel,
                "to": msg.to,
                "body": msg.body,
                "template_code": msg.template_code,
                "message_type": msg.message_type,
                "custom_fields": {"step": msg.reference.split("|")[1]},
            },
            headers={"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": msg.reference},
        )
        if resp.status_code >= 500:
            raise ApplicationError(f"provider answered {resp.status_code}")  # retried
        if resp.status_code >= 400:
            raise ApplicationError(f"provider refused: {resp.status_code}", non_retryable=True)
        return str(resp.json()["message_id"])


RETRIES = RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=30))


async def send(msg: PeerMessage) -> None:
    await workflow.execute_activity(
        "peer_send", msg, result_type=str, start_to_close_timeout=timedelta(seconds=30), retry_policy=RETRIES
    )


@workflow.defn(name="HandWrittenPostPurchase")
class HandWrittenPostPurchase:
    def __init__(self) -> None:
        self.events: set[str] = set()
        self.receipts: dict[str, str] = {}

    @workflow.signal(name=EVENT_SIGNAL)
    def order_event(self, name: str) -> None:
        self.events.add(name)

    @workflow.signal(name=RECEIPT_SIGNAL)
    def receipt(self, r: PeerReceipt) -> None:
        self.receipts[r.reference] = r.status

    async def notify(self, order: PeerOrder, step: str, text: str) -> None:
        """AlimTalk, then SMS if it is refused, fails, or no receipt comes in time."""
        wid = workflow.info().workflow_id
        ref = f"{wid}|{step}|alimtalk"
        try:
            await send(PeerMessage(ref, "alimtalk", order.phone, text, step))
            try:
                await workflow.wait_condition(
                    lambda: ref in self.receipts, timeout=timedelta(seconds=order.receipt_timeout_seconds)
                )
            except TimeoutError:
                pass
            if self.receipts.get(ref) == "delivered":
                return
        except ActivityError:
            pass
        await send(PeerMessage(f"{wid}|{step}|sms", "sms", order.phone, text))

    @workflow.run
    async def run(self, order: PeerOrder) -> None:
        await self.notify(order, "payment_complete", f"{order.name}님, 주문 {order.order_id} 결제가 완료되었습니다.")
        await workflow.wait_condition(lambda: "shipped" in self.events)
        await self.notify(order, "shipping_started", f"{order.name}님, 주문 {order.order_id} 배송이 시작되었습니다.")
        await workflow.wait_condition(lambda: "delivered" in self.events)
        delivered = workflow.now()
        await workflow.sleep(order.review_delay_seconds)
        await self.notify(order, "review_request", f"{order.name}님, 상품은 마음에 드셨나요? 리뷰를 남겨 주세요.")
        sale_at = delivered + timedelta(seconds=order.sale_after_seconds)
        await workflow.sleep(max(0.0, (sale_at - workflow.now()).total_seconds()))
        sale = "(광고) 최근 구매 고객님께만 드리는 할인 쿠폰이 도착했습니다. 무료수신거부 080-000-0000"
        ref = f"{workflow.info().workflow_id}|recent_buyer_sale|sms"
        await send(PeerMessage(ref, "sms", order.phone, sale, message_type="LMS"))


def verified(secret: str, timestamp: str, signature: str, body: bytes, tolerance: int = 300) -> bool:
    """The sandbox's scheme: HMAC-SHA256 over ``{timestamp}.{body}``, ``v1=<hex>``."""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(f"v1={mac}", s) for s in signature.split())


def webhook_app(client: object, secret: str) -> object:
    """The minimal webhook: check the signature, signal each receipt's journey."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
    from temporalio.client import Client
    from temporalio.service import RPCError, RPCStatusCode

    assert isinstance(client, Client)

    async def receipts(request: Request) -> Response:
        body = await request.body()
        ts, sig = request.headers.get("x-sandbox-timestamp", ""), request.headers.get("x-sandbox-signature", "")
        if not verified(secret, ts, sig, body):
            return Response(status_code=401)
        batch = json.loads(body)["receipts"]

        async def one(r: dict[str, str]) -> None:
            wid = r["reference"].split("|", 1)[0]
            try:
                await client.get_workflow_handle(wid).signal(RECEIPT_SIGNAL, PeerReceipt(r["reference"], r["status"]))
            except RPCError as err:
                if err.status is not RPCStatusCode.NOT_FOUND:  # a journey that has ended needs no receipt
                    raise

        await asyncio.gather(*(one(r) for r in batch))
        return Response(status_code=200)

    async def healthz(_: Request) -> Response:
        return Response("ok")

    return Starlette(routes=[Route("/webhooks/sandbox", receipts, methods=["POST"]), Route("/healthz", healthz)])


async def serve_webhook(port: int) -> None:
    import uvicorn
    from temporalio.client import Client

    client = await Client.connect(os.environ["PEER_TEMPORAL_ADDRESS"])
    app = webhook_app(client, os.environ["PEER_WEBHOOK_SECRET"])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")  # type: ignore[arg-type]
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    if sys.argv[1:2] == ["webhook"]:
        asyncio.run(serve_webhook(int(sys.argv[2])))
