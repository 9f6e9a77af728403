"""Configuration and input mistakes a user can make end in one line that names the setting, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from durable_journeys.starter.errors import InvalidInput
from durable_journeys.starter.stack import Stack
from tests.factories import customer, order
from tests.starter.test_cli import journeys


def one_line(done: object, *needles: str) -> None:
    err = done.stderr.strip()  # type: ignore[attr-defined]
    assert done.returncode == 2, err  # type: ignore[attr-defined]
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("sqlite:///journeys.db", "synchronous driver 'sqlite'"),
        ("postgresql://root@127.0.0.1/test", "synchronous driver 'postgresql'"),
        ("postgresql+psycopg2://root@127.0.0.1/test", "synchronous driver 'postgresql+psycopg2'"),
        ("mysql+nope://x/y", "JOURNEYS_DATABASE_URL"),
    ],
)
@pytest.mark.parametrize("command", [["db", "upgrade"], ["list", "--journey", "cart"]])
def test_a_database_url_without_an_async_driver_is_one_line(
    tmp_path: Path, url: str, needle: str, command: list[str]
) -> None:
    one_line(journeys(*command, env={"JOURNEYS_DATABASE_URL": url}, cwd=tmp_path), "JOURNEYS_DATABASE_URL", needle)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOURNEYS_ROUTES", "{bad"),
        ("JOURNEYS_ROUTES", '{"alimtalk": ['),
        ("JOURNEYS_LINK_HOSTS", "[shop.example"),
        ("JOURNEYS_CODEC_SERVER_ORIGINS", "not json"),
        ("JOURNEYS_JOURNEY_PRIORITY", "cart,post-purchase"),
    ],
)
def test_malformed_json_in_a_setting_is_one_line_naming_it(tmp_path: Path, name: str, value: str) -> None:
    one_line(journeys("db", "upgrade", env={name: value}, cwd=tmp_path), name, "not valid JSON")


@pytest.mark.parametrize("value", ["0", "201", "many"])
def test_a_pool_size_out_of_bounds_is_one_line_naming_it(tmp_path: Path, value: str) -> None:
    one_line(journeys("db", "upgrade", env={"JOURNEYS_DATABASE_POOL_SIZE": value}, cwd=tmp_path), "DATABASE_POOL_SIZE")


async def test_a_namespace_the_server_does_not_have_is_one_line(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    import asyncio

    env = {
        "JOURNEYS_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "JOURNEYS_TEMPORAL_NAMESPACE": "no-such-namespace",
        "JOURNEYS_DATA_DIR": str(tmp_path),
    }
    assert journeys("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    done = await asyncio.to_thread(journeys, "list", "--journey", "cart", env=env, cwd=tmp_path)
    one_line(done, "no namespace 'no-such-namespace'", "JOURNEYS_TEMPORAL_NAMESPACE")


@pytest.mark.parametrize(
    ("bad_order", "bad_customer", "expected"),
    [
        ({"amount": -1}, {"phone": "12"}, ["order: amount:", "customer: phone: phone must be a Korean number"]),
        ({}, {"phone": "12"}, ["invalid customer: phone: phone must be a Korean number"]),
        ({"items": []}, {}, ["invalid order: items:"]),
        ({"amount": 0}, {"email": "nope"}, ["order: amount:", "customer: email: email is not a valid address"]),
    ],
)
async def test_every_problem_of_the_order_and_the_customer_is_named_at_once(
    stack: Stack, bad_order: dict, bad_customer: dict, expected: list[str]
) -> None:
    c = customer()
    o = order(c).model_dump()
    with pytest.raises(InvalidInput) as refused:
        await stack.journeys.order_paid({**o, **bad_order}, {**c.model_dump(), **bad_customer})
    message = str(refused.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message
    assert await stack.store.get_customer(c.customer_id) is None  # nothing was stored or started
