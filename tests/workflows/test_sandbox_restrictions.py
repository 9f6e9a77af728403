"""Every journey runs under the workflow sandbox's default restrictions.

Workers check the journeys with the sandbox too (``starter.assembly.RESTRICTIONS``: only data modules are
passed through); this test runs them under the defaults, with no pass-through, so a ``datetime.now()``
or an I/O call slipped into a journey fails here.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from durable_journeys.starter.stack import Stack
from durable_journeys.workflows import Outcome, care_id
from tests import factories
from tests.factories import customer, order


async def test_every_journey_completes_under_default_sandbox_restrictions(
    env: WorkflowEnvironment, stack: Stack
) -> None:
    stack.journeys.care_segment = "first_order"
    consented = factories.clock - timedelta(days=30)
    c = customer(
        app_installed=True,
        push_tokens=["device-token-1"],
        marketing_consent={"push": consented, "brand_message": consented, "sms": consented},
    )
    o = order(c)
    async with stack.worker(workflow_runner=SandboxedWorkflowRunner(), max_cached_workflows=0):
        paid = await stack.journeys.order_paid(o, c)
        cart = await stack.journeys.cart_updated(c.customer_id, {"items": [{"name": "양말", "unit_price": 5000}]})
        await stack.journeys.order_shipped(o.order_id)
        await stack.journeys.order_delivered(o.order_id)
        post_purchase = await paid.result()
        cart_result = await cart.result()
        await env.sleep(timedelta(days=15))
        care = stack.journeys.client.get_workflow_handle(care_id(c.customer_id, o.order_id))
        care_status = (await care.describe()).status
        care_timeline = await stack.journeys.timeline(care.id)
    assert post_purchase.outcome == "completed" and cart_result.outcome == "completed"
    assert care_status is WorkflowExecutionStatus.COMPLETED
    assert [e.step for e in care_timeline if e.outcome is Outcome.DELIVERED] == ["care_welcome", "care_tier_regular"]
    # The cart's push and coupon took this week's two ad slots (the default frequency cap).
    assert [(e.step, e.detail) for e in care_timeline if e.outcome is Outcome.SKIPPED] == [
        ("care_recommendation", "frequency_cap")
    ]


def test_production_workers_check_a_shop_s_own_journeys_and_run_the_pack_s_as_tested() -> None:
    """The pack's journeys are checked here, by the suite; a worker that also runs a shop's keeps the sandbox."""
    from temporalio.worker import UnsandboxedWorkflowRunner

    from durable_journeys.starter.assembly import WORKER_RESTRICTIONS, workflow_runner
    from durable_journeys.workflows import ALL_WORKFLOWS
    from tests.starter.app_tips import AppTipsJourney

    assert isinstance(workflow_runner(ALL_WORKFLOWS), UnsandboxedWorkflowRunner)
    shop = workflow_runner([*ALL_WORKFLOWS, AppTipsJourney])
    assert isinstance(shop, SandboxedWorkflowRunner) and shop.restrictions is WORKER_RESTRICTIONS
    assert not any(m.startswith("tests") for m in WORKER_RESTRICTIONS.passthrough_modules)
    checked = workflow_runner(ALL_WORKFLOWS, check_pack_journeys=True)
    assert isinstance(checked, SandboxedWorkflowRunner)
    assert "durable_journeys.workflows" not in checked.restrictions.passthrough_modules
