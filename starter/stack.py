"""An embedded stack: store, sandbox provider, webhook app and send activities wired together.

The demo serves it over real HTTP on free ports; tests wire it in-process through
``httpx.ASGITransport``. Both run the same code paths: send -> sandbox -> signed receipt ->
webhook app -> message log -> signal.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI
from temporalio.client import Client

from durable_journeys.activities import SendActivities, Store, TemplateRegistry
from durable_journeys.providers import ProviderRegistry
from durable_journeys.providers.sandbox import ReceiptTiming, SandboxState, create_sandbox_app
from durable_journeys.providers.signing import sign
from durable_journeys.starter.assembly import (
    WorkerGroup,
    build_activities,
    build_providers,
    build_worker,
    journey_classes,
    journey_templates,
    sandbox_config,
    send_queues,
)
from durable_journeys.starter.inputs import CareSegment
from durable_journeys.starter.journeys import Journeys
from durable_journeys.starter.serve import free_port, serving
from durable_journeys.starter.settings import Settings, dev_settings
from durable_journeys.starter.webhooks import webhook_app_for
from durable_journeys.workflows import TASK_QUEUE, CareSettings, CartSettings, PostPurchaseSettings

if TYPE_CHECKING:
    from bizgo import AsyncBizgo


@dataclass
class Stack:
    """The wired parts; ``worker()`` builds a worker for them."""

    journeys: Journeys
    store: Store
    providers: ProviderRegistry
    activities: SendActivities
    sandbox_app: FastAPI
    webhook_app: FastAPI
    sandbox_url: str
    webhook_url: str
    task_queue: str
    settings: Settings  # what the stack runs with (its secrets are random unless given)

    @property
    def sandbox(self) -> SandboxState:
        """What the sandbox recorded: ``messages`` (accepted sends), ``attempts``, receipts."""
        state: SandboxState = self.sandbox_app.state.sandbox
        return state

    def api_auth(self) -> dict[str, str]:
        """The ``Authorization`` header ``/events`` takes with this stack's API key."""
        return {"Authorization": f"Bearer {self.settings.api_key.get_secret_value()}"}

    def sandbox_auth(self) -> dict[str, str]:
        """The ``Authorization`` header the sandbox's API (sends, lookups, ``/v1/control/...``) takes."""
        return {"Authorization": f"Bearer {self.settings.sandbox_api_key.get_secret_value()}"}

    def inbox_auth(self, customer_id: str) -> dict[str, str]:
        """The ``Authorization`` header that opens ``customer_id``'s inbox (a fresh inbox token)."""
        return {"Authorization": f"Bearer {self.journeys.inbox_token(customer_id)}"}

    def signed_receipts(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """Headers the sandbox would sign a receipt batch ``body`` with."""
        ts = int(time.time()) if timestamp is None else timestamp
        return {
            "Content-Type": "application/json",
            "X-Sandbox-Timestamp": str(ts),
            "X-Sandbox-Signature": sign(self.settings.sandbox_webhook_secret.get_secret_value(), ts, body),
        }

    def worker(self, **kwargs: Any) -> WorkerGroup:
        """The workers of this stack's task queue (and its rate-limited providers' queues).

        By default for every journey the facade knows (the reference ones and ``JOURNEYS_JOURNEYS``).
        """
        kwargs.setdefault("workflows", self.journeys.journey_classes)
        kwargs.setdefault("check_pack_journeys", True)  # tests check every journey's code in the sandbox
        group = build_worker(
            self.journeys.client,
            self.activities,
            task_queue=self.task_queue,
            queues=send_queues(self.settings, self.task_queue),
            **kwargs,
        )
        # The testing kit's client settles the workflow tasks of its last calls before a worker stops.
        interceptors = self.journeys.client.config().get("interceptors", [])
        group.before_stop = next((i.settle for i in interceptors if hasattr(i, "settle")), None)
        return group


@asynccontextmanager
async def embedded_stack(
    client: Client,
    *,
    database_url: str,
    settings: Settings | None = None,
    task_queue: str = TASK_QUEUE,
    http: bool = False,
    receipt_timing: ReceiptTiming = ReceiptTiming.AFTER_RESPONSE,
    receipt_delay: timedelta = timedelta(milliseconds=200),
    post_purchase: PostPurchaseSettings | None = None,
    cart: CartSettings | None = None,
    care: CareSettings | None = None,
    care_segment: CareSegment = "first_order",
    consent_notices: bool = False,
    templates: TemplateRegistry | None = None,
    sandbox_port: int | None = None,
    webhook_port: int | None = None,
    bizgo_client: AsyncBizgo | None = None,
) -> AsyncIterator[Stack]:
    """Build and run a stack until the block ends.

    Args:
        client: a Temporal client with the pydantic data converter.
        database_url: the store's database.
        settings: a ``worker.Settings``; each secret it leaves unset (or unusable) is made
            random for this stack: this is a development mode.
        task_queue: the journeys' task queue.
        http: serve the sandbox and webhook app over real HTTP on free ports.
        receipt_timing: when the sandbox posts receipts (before its answer under time skipping).
        receipt_delay: how long after accepting the sandbox delivers (``AFTER_RESPONSE`` only).
        post_purchase: default post-purchase timings for journeys started by this stack.
        cart: default cart-journey settings.
        care: default care-journey settings.
        care_segment: which orders start a care journey.
        consent_notices: start biennial consent-notice journeys for consenting customers. Off
            here by default: under time skipping their two-year timers fire whenever a test
            waits for a result, and their notices would mix with the journeys under test.
        templates: the template registry (default: the reference templates).
        sandbox_port: with ``http``, the sandbox's port (default: a free one).
        webhook_port: with ``http``, the webhook app's port (default: a free one).
        bizgo_client: the Bizgo SDK client, when ``settings`` route channels to Bizgo (tests pass
            ``bizgo.testing.FakeTransport().async_client()``).
    """
    settings = dev_settings(settings)
    workflows = journey_classes(settings)  # the shop's own journeys (JOURNEYS_JOURNEYS) too
    templates = templates or journey_templates(settings, workflows)
    async with AsyncExitStack() as stack:
        store = Store.from_url(database_url)
        stack.push_async_callback(store.close)
        await store.migrate()
        journeys = Journeys(
            client,
            store,
            task_queue=task_queue,
            templates=templates,
            post_purchase=post_purchase,
            cart=cart,
            care=care,
            care_segment=care_segment,
            inbox_token_secret=settings.inbox_token_secret.get_secret_value(),
            consent_notices=consent_notices,
            link_hosts=settings.link_hosts,
            journeys=workflows,
        )
        webhook_holder: dict[str, Any] = {}

        async def webhook_asgi(scope: Any, receive: Any, send: Any) -> None:
            await webhook_holder["app"](scope, receive, send)

        if http:
            sandbox_port, webhook_port = sandbox_port or free_port(), webhook_port or free_port()
            sandbox_url, webhook_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{webhook_port}"
            receipt_client = httpx.AsyncClient(timeout=10)
            sandbox_client = httpx.AsyncClient(base_url=sandbox_url, timeout=settings.provider_timeout_seconds)
        else:
            sandbox_url, webhook_url = "http://sandbox", "http://webhooks"
            receipt_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=webhook_asgi))
            sandbox_client = None  # set below, once the sandbox app exists
        stack.push_async_callback(receipt_client.aclose)
        sandbox_app = create_sandbox_app(
            sandbox_config(
                settings,
                webhook_url=f"{webhook_url}/webhooks/sandbox",
                receipt_timing=receipt_timing,
                receipt_delay_seconds=receipt_delay.total_seconds(),
            ),
            receipt_client=receipt_client,
        )
        if sandbox_client is None:
            sandbox_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox_app), base_url=sandbox_url)
        stack.push_async_callback(sandbox_client.aclose)
        providers = build_providers(
            settings, store, clients={"sandbox": sandbox_client, **({"bizgo": bizgo_client} if bizgo_client else {})}
        )
        webhook_app = webhook_app_for(settings, journeys, providers)
        webhook_holder["app"] = webhook_app
        if http:
            await stack.enter_async_context(serving(sandbox_app, port=sandbox_port))
            await stack.enter_async_context(serving(webhook_app, port=webhook_port))
        yield Stack(
            journeys=journeys,
            store=store,
            providers=providers,
            activities=build_activities(settings, store, providers, templates, task_queue=task_queue),
            sandbox_app=sandbox_app,
            webhook_app=webhook_app,
            sandbox_url=sandbox_url,
            webhook_url=webhook_url,
            task_queue=task_queue,
            settings=settings,
        )
