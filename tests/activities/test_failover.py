"""A channel's providers in order: the next one takes a message the one before refused for configuration,
or was unavailable for (known not sent) past its budget; never one whose outcome is unknown."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from durable_journeys.activities import (
    OUTCOME_UNKNOWN,
    PROVIDER_UNAVAILABLE,
    Channel,
    MessageStatus,
    OutcomeStatus,
    SendActivities,
    default_templates,
)
from durable_journeys.activities.provider_calls import failover_key
from durable_journeys.providers import ErrorClass, ProviderRegistry
from durable_journeys.providers.sandbox import SandboxProvider
from durable_journeys.starter.stack import Stack
from tests.activities.test_send import request
from tests.factories import customer


def sandbox_as(
    stack: Stack, name: str, *, api_key: str | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> SandboxProvider:
    return SandboxProvider(
        httpx.AsyncClient(transport=transport or httpx.ASGITransport(app=stack.sandbox_app), base_url="http://sandbox"),
        api_key=api_key if api_key is not None else stack.settings.sandbox_api_key.get_secret_value(),
        webhook_secret="x",
        name=name,
    )


def chain(stack: Stack, primary: SandboxProvider, *, failover_after: int = 3) -> SendActivities:
    backup = sandbox_as(stack, "backup")
    registry = ProviderRegistry(
        {"primary": primary, "backup": backup}, routes={Channel.ALIMTALK: ["primary", "backup"]}
    )
    return SendActivities(stack.store, registry, default_templates(), failover_after=failover_after)


def attempt(n: int) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=n)
    return env


async def _log(stack: Stack) -> list[tuple[str, str, MessageStatus, str | None]]:
    return sorted((m.idempotency_key, m.provider, m.status, m.error_class) for m in await stack.store.messages())


async def test_a_provider_refusing_our_configuration_hands_the_message_to_the_next(stack: Stack) -> None:
    c = customer()
    await stack.store.upsert_customer(c)
    acts = chain(stack, sandbox_as(stack, "primary", api_key="not-the-key-" + "x" * 30))
    req = request(c.customer_id)
    outcome = await attempt(1).run(acts.send_message, req)
    backup_key = failover_key(req.idempotency_key, "backup")
    assert (outcome.status, outcome.provider, outcome.idempotency_key) == (OutcomeStatus.ACCEPTED, "backup", backup_key)
    assert [m["reference"] for m in stack.sandbox.messages.values()] == [backup_key]  # one message, by the backup
    assert await _log(stack) == [
        (req.idempotency_key, "primary", MessageStatus.REJECTED, ErrorClass.CONFIG.value),
        (backup_key, "backup", MessageStatus.ACCEPTED, None),
    ]
    again = await attempt(2).run(acts.send_message, req)  # a retried attempt settles, sends nothing
    assert (again.idempotency_key, again.replayed, len(stack.sandbox.messages)) == (backup_key, True, 1)


@pytest.mark.parametrize("failover_after", [1, 3])
async def test_an_unavailable_provider_is_retried_within_its_budget_then_handed_off(
    stack: Stack, failover_after: int
) -> None:
    c = customer()
    await stack.store.upsert_customer(c)
    acts = chain(stack, sandbox_as(stack, "primary", transport=_Failing503()), failover_after=failover_after)
    req = request(c.customer_id)
    for n in range(1, failover_after):
        with pytest.raises(ApplicationError) as err:
            await attempt(n).run(acts.send_message, req)
        assert err.value.type == PROVIDER_UNAVAILABLE
        assert stack.sandbox.messages == {}
    outcome = await attempt(failover_after).run(acts.send_message, req)
    assert (outcome.status, outcome.provider) == (OutcomeStatus.ACCEPTED, "backup")
    assert len(stack.sandbox.messages) == 1
    assert await _log(stack) == [
        (req.idempotency_key, "primary", MessageStatus.REJECTED, ErrorClass.RETRY.value),  # known not sent
        (failover_key(req.idempotency_key, "backup"), "backup", MessageStatus.ACCEPTED, None),
    ]


async def test_an_unknown_outcome_is_never_handed_off(stack: Stack) -> None:
    c = customer()
    await stack.store.upsert_customer(c)
    acts = chain(stack, sandbox_as(stack, "primary", transport=_AnswerLost(stack)), failover_after=1)
    req = request(c.customer_id)
    for n in (1, 5, 50):
        with pytest.raises(ApplicationError) as err:
            await attempt(n).run(acts.send_message, req)
        assert err.value.type == OUTCOME_UNKNOWN
    assert {m["reference"] for m in stack.sandbox.messages.values()} == {req.idempotency_key}  # never the backup
    assert [p for _, p, _, _ in await _log(stack)] == ["primary"]


class _Failing503(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": {"code": "TEMPORARILY_UNAVAILABLE", "message": "down"}})


class _AnswerLost(httpx.AsyncBaseTransport):
    """The sandbox takes the message, the answer is lost, and lookups fail: the outcome is unknown."""

    def __init__(self, stack: Stack) -> None:
        self._inner = httpx.ASGITransport(app=stack.sandbox_app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(503)
        await self._inner.handle_async_request(request)
        raise httpx.ReadTimeout("answer lost", request=request)
