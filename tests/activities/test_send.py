"""The send activity alone (``ActivityEnvironment``), against the real sandbox and store."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from durable_journeys.activities import (
    CONFIG_ERROR,
    PROVIDER_UNAVAILABLE,
    Channel,
    MessageStatus,
    OutcomeStatus,
    SendActivities,
    SendRequest,
    Template,
    TemplateRegistry,
    default_templates,
)
from durable_journeys.providers import ErrorClass, OutboundMessage, ProviderRegistry, ReceiptMode
from durable_journeys.providers.sandbox import SandboxProvider
from durable_journeys.starter.stack import Stack
from tests.factories import customer

NOON_KST = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def request(customer_id: str, channel: Channel = Channel.ALIMTALK, **overrides: object) -> SendRequest:
    data: dict[str, object] = {
        "workflow_id": "post-purchase:o-1",
        "journey": "post-purchase",
        "step": "payment_complete",
        "customer_id": customer_id,
        "channel": channel,
        "template": "order_paid",
        "variables": {"order_id": "o-1", "item_name": "무선 이어폰", "amount": "39,000"},
        "journey_time": NOON_KST,
    }
    data.update(overrides)
    return SendRequest.model_validate(data)


async def test_the_same_key_twice_sends_once(stack: Stack) -> None:
    c = customer()
    await stack.store.upsert_customer(c)
    env = ActivityEnvironment()
    first = await env.run(stack.activities.send_message, request(c.customer_id))
    again = await env.run(stack.activities.send_message, request(c.customer_id))  # a retry after a crash
    assert (first.status, again.status) == (OutcomeStatus.ACCEPTED, OutcomeStatus.ACCEPTED)
    assert (first.replayed, again.replayed) == (False, True)
    assert again.provider_message_id == first.provider_message_id
    assert len(stack.sandbox.messages) == 1
    assert len(await stack.store.messages()) == 1


async def test_crash_between_send_and_log_is_reconciled_by_key(stack: Stack) -> None:
    """The provider took the message but the worker died before logging it: no second send."""
    c = customer()
    await stack.store.upsert_customer(c)
    req = request(c.customer_id)
    await stack.store.claim_message(
        idempotency_key=req.idempotency_key,
        workflow_id=req.workflow_id,
        step=req.step,
        channel="alimtalk",
        customer_id=c.customer_id,
        provider="sandbox",
        purpose="informational",
        template="order_paid",
    )
    provider = stack.providers.get("sandbox")
    sent = await provider.send(
        OutboundMessage(channel=Channel.ALIMTALK, to=c.phone or "", body="x", idempotency_key=req.idempotency_key)
    )
    outcome = await ActivityEnvironment().run(stack.activities.send_message, req)
    assert outcome.status is OutcomeStatus.ACCEPTED
    assert outcome.provider_message_id == sent.provider_message_id
    assert len(stack.sandbox.messages) == 1
    assert [m.status for m in await stack.store.messages()] == [MessageStatus.ACCEPTED]


async def test_timeout_after_write_is_reconciled_not_resent(stack: Stack) -> None:
    """The answer is lost after the sandbox took the message: UNKNOWN, then a lookup finds it."""
    inner = httpx.ASGITransport(app=stack.sandbox_app)

    class LoseAnswer(httpx.AsyncBaseTransport):
        async def handle_async_request(self, req: httpx.Request) -> httpx.Response:
            resp = await inner.handle_async_request(req)
            if req.method == "POST":
                raise httpx.ReadTimeout("answer lost", request=req)
            return resp

    flaky = SandboxProvider(
        httpx.AsyncClient(transport=LoseAnswer(), base_url="http://sandbox"),
        api_key=stack.settings.sandbox_api_key.get_secret_value(),
        webhook_secret="x",
    )
    acts = SendActivities(stack.store, ProviderRegistry({"sandbox": flaky}, default="sandbox"), default_templates())
    c = customer()
    await stack.store.upsert_customer(c)
    outcome = await ActivityEnvironment().run(acts.send_message, request(c.customer_id))
    assert outcome.status is OutcomeStatus.ACCEPTED
    assert len(stack.sandbox.messages) == 1


async def test_provider_unavailable_is_a_retryable_error(stack: Stack) -> None:
    c = customer("010-0000-0004")
    await stack.store.upsert_customer(c)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(stack.activities.send_message, request(c.customer_id))
    assert err.value.type == PROVIDER_UNAVAILABLE and not err.value.non_retryable
    assert stack.sandbox.messages == {}
    assert [m.status for m in await stack.store.messages()] == [MessageStatus.SENDING]


async def test_bad_api_key_is_a_non_retryable_config_error(stack: Stack) -> None:
    bad = SandboxProvider(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.sandbox_app), base_url="http://sandbox"),
        api_key="wrong",
        webhook_secret="x",
    )
    acts = SendActivities(stack.store, ProviderRegistry({"sandbox": bad}, default="sandbox"), default_templates())
    c = customer()
    await stack.store.upsert_customer(c)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(acts.send_message, request(c.customer_id))
    assert err.value.type == CONFIG_ERROR and err.value.non_retryable
    assert stack.sandbox.messages == {}


async def test_unregistered_push_token_is_marked_dead_and_skipped_next_time(stack: Stack) -> None:
    templates = TemplateRegistry([Template(code="hello", texts={Channel.PUSH: "안녕하세요 #{customer_name}님"})])
    acts = SendActivities(stack.store, stack.providers, templates)
    c = customer(push_tokens=["unregistered"])
    await stack.store.upsert_customer(c)
    env = ActivityEnvironment()
    first = await env.run(acts.send_message, request(c.customer_id, Channel.PUSH, template="hello", step="s1"))
    assert (first.status, first.error_class) == (OutcomeStatus.REJECTED, ErrorClass.RECIPIENT_DEAD)
    profile = await stack.store.get_customer(c.customer_id)
    assert profile is not None and profile.dead_addresses == ["unregistered"]
    second = await env.run(acts.send_message, request(c.customer_id, Channel.PUSH, template="hello", step="s2"))
    assert (second.status, second.reason) == (OutcomeStatus.SKIPPED, "no_address")
    assert stack.sandbox.messages == {}


async def test_sms_or_lms_is_chosen_by_cp949_length(stack: Stack) -> None:
    templates = TemplateRegistry(
        [
            Template(code="short", texts={Channel.SMS: "주문 #{order_id} 결제 완료"}),
            Template(code="long", texts={Channel.SMS: "가" * 46}),  # 92 bytes in cp949
            # A subject never makes an LMS: a short body goes as an SMS without it ...
            Template(code="titled", texts={Channel.SMS: "주문 #{order_id} 발송"}, subjects={Channel.SMS: "발송 안내"}),
            # ... and a long one as an LMS with it.
            Template(code="titled_long", texts={Channel.SMS: "나" * 46}, subjects={Channel.SMS: "발송 안내"}),
        ]
    )
    acts = SendActivities(stack.store, stack.providers, templates)
    c = customer()
    await stack.store.upsert_customer(c)
    env = ActivityEnvironment()
    await env.run(acts.send_message, request(c.customer_id, Channel.SMS, template="short", step="a"))
    await env.run(acts.send_message, request(c.customer_id, Channel.SMS, template="long", step="b"))
    await env.run(acts.send_message, request(c.customer_id, Channel.SMS, template="titled", step="c"))
    await env.run(acts.send_message, request(c.customer_id, Channel.SMS, template="titled_long", step="d"))
    assert [(m["message_type"], m["subject"]) for m in stack.sandbox.messages.values()] == [
        ("SMS", None),
        ("LMS", None),
        ("SMS", None),
        ("LMS", "발송 안내"),
    ]


async def test_contact_details_come_from_the_store_at_send_time(stack: Stack) -> None:
    c = customer()
    await stack.store.upsert_customer(c)
    await stack.store.upsert_customer(c.model_copy(update={"phone": "01099998888"}))
    outcome = await ActivityEnvironment().run(stack.activities.send_message, request(c.customer_id))
    assert outcome.receipt is ReceiptMode.WEBHOOK
    assert [m["to"] for m in stack.sandbox.messages.values()] == ["01099998888"]


async def test_unknown_customer_is_skipped(stack: Stack) -> None:
    outcome = await ActivityEnvironment().run(stack.activities.send_message, request("nobody"))
    assert (outcome.status, outcome.reason) == (OutcomeStatus.SKIPPED, "unknown_customer")
    assert stack.sandbox.messages == {}


SUBSCRIPTION = '{"endpoint": "https://fcm.googleapis.com/fcm/send/x", "keys": {"p256dh": "p", "auth": "a"}}'


@pytest.mark.parametrize(
    ("tokens", "dead", "push", "web_push"),
    [
        (["app-token"], [], "app-token", None),
        ([SUBSCRIPTION], [], None, SUBSCRIPTION),
        (["app-token", SUBSCRIPTION], [], "app-token", SUBSCRIPTION),
        (["dead-token", "app-token", SUBSCRIPTION], ["dead-token", SUBSCRIPTION], "app-token", None),
    ],
    ids=["app", "browser", "both", "dead-skipped"],
)
def test_push_goes_to_an_app_token_and_web_push_to_a_browser_subscription(
    tokens: list[str], dead: list[str], push: str | None, web_push: str | None
) -> None:
    from durable_journeys.activities.compose import channel_address as _address

    profile = customer(push_tokens=tokens, dead_addresses=dead)
    assert (_address(profile, Channel.PUSH), _address(profile, Channel.WEB_PUSH)) == (push, web_push)
    assert _address(profile, Channel.WEBHOOK) == profile.customer_id
