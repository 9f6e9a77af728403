"""One journey end to end on the real dev server, with the sandbox and webhook app over HTTP.

Real time, real sockets: the sandbox answers the send, then posts a signed receipt to the
webhook app, which records it and signals the journey.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from durable_journeys.activities import Channel
from durable_journeys.providers.sandbox import ReceiptTiming
from durable_journeys.starter.stack import embedded_stack
from durable_journeys.workflows import JourneyResult, Outcome, PostPurchaseSettings
from tests.factories import customer, order

pytestmark = pytest.mark.devserver


async def test_journey_over_real_http_on_the_dev_server(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    timings = PostPurchaseSettings(
        receipt_timeout=timedelta(seconds=5),
        review_delay=timedelta(seconds=1),
        sale_after_delivery=timedelta(seconds=2),
        review_hours_kst=None,
    )
    async with embedded_stack(
        dev_env.client,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}",
        http=True,
        receipt_timing=ReceiptTiming.AFTER_RESPONSE,
        receipt_delay=timedelta(milliseconds=100),
        post_purchase=timings,
        task_queue="e2e",
        care_segment="off",
    ) as stack:
        async with httpx.AsyncClient(base_url=stack.webhook_url) as http:
            assert (await http.get("/healthz")).status_code == 200
        kakao, no_kakao = customer(), customer("010-0000-0001")
        o1, o2 = order(kakao), order(no_kakao)
        async with stack.worker():
            h1 = await stack.journeys.order_paid(o1, kakao)
            h2 = await stack.journeys.order_paid(o2, no_kakao)
            for o in (o1, o2):
                await stack.journeys.order_delivered(o.order_id)
            r1: JourneyResult = await h1.result()
            r2: JourneyResult = await h2.result()
        assert [(e.step, e.channel) for e in r1.timeline if e.outcome is Outcome.DELIVERED] == [
            ("payment_complete", Channel.ALIMTALK),
            ("review_request", Channel.ALIMTALK),
            ("recent_buyer_sale", Channel.SMS),
        ]
        assert [(e.step, e.channel) for e in r2.timeline if e.outcome is Outcome.DELIVERED] == [
            ("payment_complete", Channel.SMS),
            ("review_request", Channel.SMS),
            ("recent_buyer_sale", Channel.SMS),
        ]
        # every receipt travelled sandbox -> HTTP -> webhook app -> message log
        log = await stack.store.messages()
        accepted = [m for m in log if m.status == "accepted"]
        assert len(accepted) == 6 and all(m.receipt_status == "delivered" for m in accepted)
        assert len(stack.sandbox.messages) == 6


async def test_setup_registers_search_attributes_once(dev_env: WorkflowEnvironment) -> None:
    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    from durable_journeys.starter.setup import register_search_attributes

    assert await register_search_attributes(dev_env.client) == []  # the dev server got them at start
    namespace = f"setup-{uuid.uuid4().hex[:8]}"
    await dev_env.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400))
    )
    fresh = await Client.connect(
        dev_env.client.service_client.config.target_host, namespace=namespace, data_converter=pydantic_data_converter
    )
    assert sorted(await register_search_attributes(fresh)) == ["CustomerId", "Journey", "JourneyStage"]
    assert await register_search_attributes(fresh) == []
