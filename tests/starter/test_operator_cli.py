"""An operator at a terminal: journeys list, skip, resend, exit and inspect against the real dev server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_journeys.starter.stack import embedded_stack
from durable_journeys.workflows import post_purchase_id
from tests.factories import customer, order
from tests.helpers import eventually
from tests.starter.test_cli import journeys


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    done = await asyncio.to_thread(journeys, *args, env=env)  # the worker runs in this event loop meanwhile
    return done.returncode, done.stdout, done.stderr


async def test_an_operator_finds_a_customer_steers_the_journey_and_reads_what_happened(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}"
    queue = f"ops-{uuid.uuid4().hex[:8]}"
    env = {
        "JOURNEYS_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "JOURNEYS_DATABASE_URL": url,
        "JOURNEYS_TASK_QUEUE": queue,
    }
    c = customer()
    o = order(c)
    workflow_id = post_purchase_id(o.order_id)
    async with embedded_stack(dev_env.client, database_url=url, task_queue=queue, care_segment="off") as stack:
        async with stack.worker():
            await stack.journeys.order_paid(o, c, settings={"review_hours_kst": None})

            async def payment_delivered() -> bool:
                return any(e.outcome.value == "delivered" for e in await stack.journeys.timeline(workflow_id))

            await eventually(payment_delivered, timeout=30)

            async def listed() -> str:
                code, out, _ = await cli("list", "--customer", c.customer_id, env=env)
                return out if code == 0 and workflow_id in out else ""

            table = await eventually(listed, timeout=30)  # visibility is eventually consistent
            by_stage = await cli(
                "list", "--journey", "post-purchase", "--stage", "waiting_for_shipping", "--limit", "1000", env=env
            )
            everything = await cli("list", "--limit", "1000", env=env)  # every running journey
            resent = await cli(
                "resend", workflow_id, "payment_complete", "-c", "sms", "-o", "jimin", "-r", "lost phone", env=env
            )
            refused = await cli("resend", workflow_id, "review_request", "-o", "jimin", "-r", "why not", env=env)
            unconfirmed = await cli("skip", workflow_id, "-o", "jimin", "-r", "shipped by hand", env=env)
            skipped = await cli("skip", workflow_id, "-o", "jimin", "-r", "shipped by hand", "--yes", env=env)
            exited = await cli("exit", workflow_id, "-o", "jimin", "-r", "customer asked", env=env)
            await stack.journeys.client.get_workflow_handle(workflow_id).result()
            inspected = await cli("inspect", workflow_id, env=env)
            again = await cli("exit", workflow_id, "-o", "jimin", "-r", "again", env=env)
            missing = await cli("skip", "post-purchase:no-such-order-1", "-o", "jimin", "-r", "x", "--yes", env=env)
    assert 'query: CustomerId = "' in table and "post-purchase" in table and "waiting_for_shipping" in table
    assert workflow_id in by_stage[1]
    assert everything[0] == 0 and workflow_id in everything[1], everything
    assert everything[1].startswith('query: Journey IS NOT NULL AND ExecutionStatus = "Running"')
    assert resent[0] == 0 and resent[1].startswith("resent on sms"), resent
    # It says what a skip will do before acting; without a terminal it acts only with --yes.
    said = f"{workflow_id} waits: wait for shipping. A skip: the journey gives up (gave_up:not_shipped).\n"
    assert unconfirmed[0] == 2 and unconfirmed[1].startswith(said) and "add --yes" in unconfirmed[2]
    assert skipped[0] == 0 and skipped[1].startswith(said), skipped
    assert "--as order.delivered | --as order.shipped" in skipped[1]
    assert skipped[1].endswith("skipped: wait for shipping: the journey gives up (gave_up:not_shipped)\n")
    assert refused[0] == 2 and refused[2].strip() == (
        f"journeys: {workflow_id}: step 'review_request' was never sent in this run (sent: payment_complete)"
    )
    assert exited[0] == 2 and "the journey has ended" in exited[2]  # the skip already ended it (not shipped)
    code, out, err = inspected
    assert code == 0, err
    assert "resend by jimin: lost phone" in out and "skip_wait by jimin: shipped by hand" in out
    assert "operator actions: 2" in out
    assert again[0] == 2 and again[2].count("\n") == 1 and "Traceback" not in again[2]
    assert missing[0] == 2 and missing[2].strip() == "journeys: no journey 'post-purchase:no-such-order-1'"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["list", "--customer", 'x" OR Journey IS NOT NULL'], "invalid customer_id"),
        (["list", "--stage", "a b"], "invalid stage"),
        (["skip", "cart:c-1", "-o", "jimin", "-r", ""], "invalid action: reason"),
        (["resend", "cart:c-1", "cart_reminder", "-c", "fax", "-o", "j", "-r", "x"], "invalid action: channel"),
        (["exit", "cart c-1", "-o", "jimin", "-r", "x"], "invalid workflow_id"),
    ],
)
def test_bad_input_is_one_line_before_anything_is_asked_of_temporal(args: list[str], expected: str) -> None:
    done = journeys(*args, env={"JOURNEYS_TEMPORAL_ADDRESS": "127.0.0.1:1"})  # nothing listens there
    assert done.returncode == 2
    assert done.stderr.startswith(f"journeys: {expected}") and done.stderr.count("\n") == 1, done.stderr
