"""``python -m bench [N]``: the pack against the same journey written by hand on Temporal.

One run, the same machine, each system on a fresh instance of the same dev server: **bare** (the
post-purchase shape with trivial activities), the **hand-written peer** (``bench/_peer.py``: what
a shop writes from Temporal's samples, over the same sandbox provider and a minimal webhook) and
**ours** (the pack: facade, contact policy, store, log, metrics, timeline) on SQLite and
PostgreSQL, in journey-level and in
gateway fallback (without stage search), and once scaled out (two worker processes, the webhook app in its own,
PostgreSQL). Every system runs as deployed: the sandbox provider and the webhook app in their own
processes, the worker (and the starter) in this one.

For each: journeys/s at saturation (N started at once), CPU per journey by process, history
events and billable actions by kind per journey, and p50/p99 from ``order.shipped`` to the
provider's accepting the shipping message at half the saturating rate. Prints a table and the
targets of the performance issue, writes ``bench/results.json`` and appends a row to
``bench/README.md``. Tests never assert timings.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from bench._bare import BareInput, BarePostPurchase, bare_send
from bench._peer import EVENT_SIGNAL, HandWrittenPostPurchase, PeerActivities, PeerOrder
from bench._procs import CpuMeter, spawn, stop, wait_healthy
from durable_journeys.activities import Channel, CustomerProfile, Store
from durable_journeys.activities.logs import configure_logging
from durable_journeys.providers.sandbox import ReceiptTiming
from durable_journeys.starter.devserver import start_dev_server
from durable_journeys.starter.stack import Stack, embedded_stack
from durable_journeys.workflows import Order, OrderItem, PostPurchaseSettings

HERE = Path(__file__).parent
SMALL_CACHE = 100  # max_cached_workflows for the second memory run: memory follows the cache
REVIEW_DELAY = 1.0
SALE_AFTER = 2.0
RECEIPT_TIMEOUT = 30.0
TIMINGS = PostPurchaseSettings(
    review_delay=timedelta(seconds=REVIEW_DELAY),
    sale_after_delivery=timedelta(seconds=SALE_AFTER),
    receipt_timeout=timedelta(seconds=RECEIPT_TIMEOUT),
    review_hours_kst=None,
)
# Gateway fallback as a shop that wants the fewest actions runs it: no JourneyStage writes either
# (stage_search false: the stage is in the run's current details, not in the list's search).
GATEWAY = TIMINGS.model_copy(update={"fallback": {"*": "gateway"}, "stage_search": False})
POSTGRES_ADMIN = os.environ.get("JOURNEYS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BILLABLE = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "start",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signal",
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: "activity",  # every attempt is billed
    EventType.EVENT_TYPE_TIMER_STARTED: "timer",
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "upsert",
    EventType.EVENT_TYPE_MARKER_RECORDED: "marker",
}
SAMPLE = 20  # journeys whose histories are counted
HALF = 0.5  # the paced run's rate, as a share of the saturating rate


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def phone(i: int) -> str:
    """A phone number of its own per journey, never ending in the sandbox's behaviour digits 0001-0006."""
    return f"010-{2000 + i // 9000:04d}-{1000 + i % 9000:04d}"


def _customer(i: int) -> CustomerProfile:
    consented = datetime.now(UTC) - timedelta(days=1)
    return CustomerProfile(
        customer_id=f"b-{i}-{uuid.uuid4().hex[:6]}",
        name="김하늘",
        phone=phone(i),
        marketing_consent={Channel.SMS: consented},
        night_consent_at=consented,
    )


def digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


async def costs(handles: list[WorkflowHandle[Any, Any]]) -> dict[str, Any]:
    """Mean history events and billable actions by kind over ``handles``."""
    events, kinds = 0, Counter[str]()
    for handle in handles:
        history = [e async for e in handle.fetch_history_events()]
        events += len(history)
        kinds.update(BILLABLE[e.event_type] for e in history if e.event_type in BILLABLE)
    n = len(handles)
    by_kind = {k: round(v / n, 2) for k, v in sorted(kinds.items())}
    return {
        "history_events": round(events / n, 1),
        "actions": round(sum(kinds.values()) / n, 2),
        "actions_by_kind": by_kind,
    }


@dataclass
class Driver:
    """How the bench starts a system's journeys and tells them what happened."""

    paid: Callable[[int], Awaitable[WorkflowHandle[Any, Any]]]
    shipped: Callable[[int], Awaitable[Any]]
    delivered: Callable[[int], Awaitable[Any]]


async def saturated(driver: Driver, n: int, meter: CpuMeter) -> dict[str, Any]:
    """N journeys at once: paid, then all shipped, then all delivered, until all end."""
    cpu0 = meter.snapshot()
    t0 = time.perf_counter()
    handles = await asyncio.gather(*(driver.paid(i) for i in range(n)))
    await asyncio.gather(*(driver.shipped(i) for i in range(n)))
    await asyncio.gather(*(driver.delivered(i) for i in range(n)))
    await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - t0
    cpu = CpuMeter.per_journey(cpu0, meter.snapshot(), n)
    return {
        "journeys_per_s": n / elapsed,
        "seconds": elapsed,
        "cpu_ms_per_journey": cpu,
        **await costs(handles[:SAMPLE]),
    }


async def paced(driver: Driver, first: int, m: int, rate: float, sandbox_url: str, api_key: str) -> dict[str, Any]:
    """``m`` journeys started at ``rate`` per second, each shipped a second after it was paid and
    delivered a second later: p50/p99 from the shipped event to the provider's accepting the
    shipping message (the sandbox's clock and ours are this machine's)."""
    shipped_at: dict[int, float] = {}

    async def one(k: int) -> WorkflowHandle[Any, Any]:
        i = first + k
        await asyncio.sleep(k / rate)
        handle = await driver.paid(i)
        await asyncio.sleep(1.0)
        shipped_at[i] = time.time()
        await driver.shipped(i)
        await asyncio.sleep(1.0)
        await driver.delivered(i)
        await handle.result()
        return handle

    handles = await asyncio.gather(*(one(k) for k in range(m)))
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=60) as http:
        resp = await http.get("/v1/messages", headers={"Authorization": f"Bearer {api_key}"})
    accepted: dict[str, float] = {}
    for msg in resp.json()["messages"]:
        if msg.get("custom_fields", {}).get("step") == "shipping_started":
            at = datetime.fromisoformat(msg["accepted_at"]).timestamp()
            to = digits(msg["to"])
            accepted[to] = min(at, accepted.get(to, at))
    latencies = sorted(
        (accepted[digits(phone(i))] - t) * 1000 for i, t in shipped_at.items() if digits(phone(i)) in accepted
    )
    if len(latencies) < m:
        raise RuntimeError(f"paced run: {m - len(latencies)} of {m} shipping messages never reached the provider")
    return {
        "rate_per_s": rate,
        "journeys": m,
        **await costs(handles[:SAMPLE]),
        "shipped_to_provider_ms_p50": round(statistics.median(latencies), 1),
        "shipped_to_provider_ms_p99": round(latencies[min(m - 1, int(m * 0.99))], 1),
    }


async def measured(driver: Driver, n: int, meter: CpuMeter, sandbox_url: str, api_key: str) -> dict[str, Any]:
    result = await saturated(driver, n, meter)
    rate = result["journeys_per_s"] * HALF
    m = max(20, min(n // 2, int(rate * 30)))  # about half a minute of traffic
    result["half_rate"] = half = await paced(driver, n, m, rate, sandbox_url, api_key)
    # Under saturation a wait is often over before it starts (no timer, no upsert): what an
    # ordinary journey costs is counted on the paced run's journeys.
    result["saturated_costs"] = {k: result.pop(k) for k in ("history_events", "actions", "actions_by_kind")}
    result |= {k: half[k] for k in ("history_events", "actions", "actions_by_kind")}
    return result


async def bare(client: Client, n: int) -> dict[str, Any]:
    queue = f"bare-{uuid.uuid4()}"
    run = uuid.uuid4().hex[:8]

    async def paid(i: int) -> WorkflowHandle[Any, Any]:
        inp = BareInput(REVIEW_DELAY, SALE_AFTER)
        return await client.start_workflow(BarePostPurchase.run, inp, id=f"bare-{run}-{i}", task_queue=queue)

    async def told(i: int, event: str) -> None:
        await client.get_workflow_handle(f"bare-{run}-{i}").signal(BarePostPurchase.event, event)

    async with Worker(client, task_queue=queue, workflows=[BarePostPurchase], activities=[bare_send]):
        driver = Driver(paid, lambda i: told(i, "shipped"), lambda i: told(i, "delivered"))
        return await saturated(driver, n, CpuMeter())


@dataclass
class Ports:
    sandbox: int
    webhook: int

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox}"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook}"


def ports() -> Ports:
    from durable_journeys.starter.serve import free_port

    return Ports(free_port(), free_port())


def sandbox_process(p: Ports, secrets_env: dict[str, str]) -> Any:
    return spawn(
        [
            "-m",
            "durable_journeys.starter.cli",
            "sandbox",
            "--port",
            str(p.sandbox),
            "--webhook-url",
            f"{p.webhook_url}/webhooks/sandbox",
        ],
        {**secrets_env, "JOURNEYS_LOG_LEVEL": "ERROR"},
    )


def target_of(client: Client) -> str:
    """The address of the server ``client`` talks to."""
    return client.service_client.config.target_host


async def peer(target: str, n: int) -> dict[str, Any]:
    """The hand-written peer, its sandbox and its minimal webhook each in their own process."""
    client = await Client.connect(target)  # a samples-style shop: the default data converter
    p = ports()
    api_key, webhook_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    env = {"JOURNEYS_SANDBOX_API_KEY": api_key, "JOURNEYS_SANDBOX_WEBHOOK_SECRET": webhook_secret}
    procs = [
        sandbox_process(p, env),
        spawn(
            ["-m", "bench._peer", "webhook", str(p.webhook)],
            {"PEER_TEMPORAL_ADDRESS": target, "PEER_WEBHOOK_SECRET": webhook_secret, "PYTHONPATH": str(HERE.parent)},
        ),
    ]
    queue = f"peer-{uuid.uuid4()}"
    run = uuid.uuid4().hex[:8]
    try:
        await wait_healthy(f"{p.sandbox_url}/healthz", f"{p.webhook_url}/healthz")
        activities = PeerActivities(p.sandbox_url, api_key)

        def wid(i: int) -> str:
            return f"peer-{run}-{i}"

        async def paid(i: int) -> WorkflowHandle[Any, Any]:
            order = PeerOrder(f"o-{run}-{i}", phone(i), "김하늘", REVIEW_DELAY, SALE_AFTER, RECEIPT_TIMEOUT)
            return await client.start_workflow(HandWrittenPostPurchase.run, order, id=wid(i), task_queue=queue)

        async def shipped(i: int) -> None:
            await client.get_workflow_handle(wid(i)).signal(EVENT_SIGNAL, "shipped")

        async def delivered(i: int) -> None:
            await client.get_workflow_handle(wid(i)).signal(EVENT_SIGNAL, "delivered")

        meter = CpuMeter({"sandbox": [procs[0].pid], "webhook app": [procs[1].pid]})
        async with Worker(client, task_queue=queue, workflows=[HandWrittenPostPurchase], activities=[activities.send]):
            return await measured(Driver(paid, shipped, delivered), n, meter, p.sandbox_url, api_key)
    finally:
        stop(procs)


async def ours(
    client: Client,
    n: int,
    database_url: str,
    *,
    timings: PostPurchaseSettings = TIMINGS,
    worker_processes: int = 0,
) -> dict[str, Any]:
    """The pack, as deployed: the sandbox and `journeys webhooks` in their own processes; the worker
    here, or in ``worker_processes`` processes of `journeys worker`; the facade here."""
    from durable_journeys.starter.assembly import build_activities, build_providers, build_worker
    from durable_journeys.starter.journeys import Journeys
    from durable_journeys.starter.settings import SECRET_SETTINGS, Settings, dev_settings

    p = ports()
    settings = dev_settings(
        Settings(
            database_url=database_url,
            sandbox_url=p.sandbox_url,
            temporal_address=client.service_client.config.target_host,
            task_queue=f"ours-{uuid.uuid4()}",
        )
    )
    env = {
        "JOURNEYS_DATABASE_URL": database_url,
        "JOURNEYS_LOG_LEVEL": "ERROR",
        "JOURNEYS_TEMPORAL_ADDRESS": settings.temporal_address,
        "JOURNEYS_TASK_QUEUE": settings.task_queue,
        "JOURNEYS_SANDBOX_URL": p.sandbox_url,
        **{f"JOURNEYS_{name.upper()}": getattr(settings, name).get_secret_value() for name in SECRET_SETTINGS},
    }
    store = Store.from_url(database_url)
    await store.migrate()
    procs = [
        sandbox_process(p, env),
        spawn(["-m", "durable_journeys.starter.cli", "webhooks", "--port", str(p.webhook)], env),
    ]
    workers = [spawn(["-m", "durable_journeys.starter.cli", "worker"], env) for _ in range(worker_processes)]
    try:
        await wait_healthy(f"{p.sandbox_url}/healthz", f"{p.webhook_url}/healthz")
        journeys = Journeys(client, store, task_queue=settings.task_queue, post_purchase=timings, care_segment="off")
        run = uuid.uuid4().hex[:8]
        customers: dict[int, CustomerProfile] = {}

        def order(i: int) -> Order:
            return Order(
                order_id=f"o-{run}-{i}",
                customer_id=f"c-{run}-{i}",
                amount=1000,
                items=[OrderItem(name="양말", unit_price=1000)],
            )

        async def paid(i: int) -> WorkflowHandle[Any, Any]:
            consented = datetime.now(UTC) - timedelta(days=1)
            customers[i] = CustomerProfile(
                customer_id=f"c-{run}-{i}",
                name="김하늘",
                phone=phone(i),
                marketing_consent={Channel.SMS: consented},
                night_consent_at=consented,
            )
            return await journeys.order_paid(order(i), customers[i])

        async def shipped(i: int) -> None:
            await journeys.order_shipped(order(i).order_id)

        async def delivered(i: int) -> None:
            await journeys.order_delivered(order(i).order_id)

        roles = {"sandbox": [procs[0].pid], "webhook app": [procs[1].pid]}
        if workers:
            roles["worker processes"] = [w.pid for w in workers]
        meter = CpuMeter(roles)
        driver = Driver(paid, shipped, delivered)
        api_key = settings.sandbox_api_key.get_secret_value()
        if workers:
            return await measured(driver, n, meter, p.sandbox_url, api_key)
        activities = build_activities(settings, store, build_providers(settings, store))
        async with build_worker(client, activities, task_queue=settings.task_queue):
            return await measured(driver, n, meter, p.sandbox_url, api_key)
    finally:
        stop(workers + procs)
        await store.close()


async def postgres_database() -> str | None:
    """A database of its own for this run on the local PostgreSQL (None: no PostgreSQL)."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = Store.from_url(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with admin.engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OSError:
        return None
    finally:
        await admin.close()
    return POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"


async def on_postgres(client: Client, n: int, **kw: Any) -> dict[str, Any] | None:
    url = await postgres_database()
    if url is None:
        return None
    try:
        return await ours(client, n, url, **kw)
    finally:
        await drop_database(url)


async def drop_database(url: str) -> None:
    admin = Store.from_url(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with admin.engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    finally:
        await admin.close()


async def memory_per_1000_waiting(client: Client, database_url: str, k: int = 1000, cache: int | None = None) -> float:
    """RSS growth of this process (worker included) while k journeys wait on a timer, with a
    workflow cache of ``cache`` (default: room for all of them)."""
    async with embedded_stack(
        client,
        database_url=database_url,
        http=True,
        care_segment="off",
        post_purchase=TIMINGS,
        task_queue=f"mem-{uuid.uuid4()}",
    ) as stack:
        async with stack.worker(max_cached_workflows=cache or k + 100, check_pack_journeys=False):
            before = rss_mb()
            customers = [_customer(i) for i in range(k)]
            handles = await asyncio.gather(
                *(
                    stack.journeys.order_paid(
                        Order(
                            order_id=f"m-{uuid.uuid4().hex[:12]}",
                            customer_id=c.customer_id,
                            amount=1000,
                            items=[OrderItem(name="양말", unit_price=1000)],
                        ),
                        c,
                    )
                    for c in customers
                )
            )
            await _wait_all_waiting(stack, [h.id for h in handles])
            after = rss_mb()
            await asyncio.gather(*(h.terminate("bench") for h in handles))
    return (after - before) * 1000 / k


async def memory_in_fresh_process(target: str, db: Path, *, cache: int | None) -> float:
    """:func:`memory_per_1000_waiting` in a new interpreter, so one run's freed memory is not
    the next run's head start."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        "--memory",
        target,
        str(db),
        str(cache or 0),
        stdout=asyncio.subprocess.PIPE,
        cwd=HERE.parent,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"memory run failed ({proc.returncode})")
    return float(out.decode().strip().splitlines()[-1])


async def _memory_main(target: str, db: str, cache: int) -> float:
    from temporalio.contrib.pydantic import pydantic_data_converter

    configure_logging(json=False, level="ERROR")
    client = await Client.connect(target, data_converter=pydantic_data_converter)
    return await memory_per_1000_waiting(client, f"sqlite+aiosqlite:///{db}", cache=cache or None)


async def _wait_all_waiting(stack: Stack, ids: list[str]) -> None:
    """Until every journey's payment message has its receipt (they then wait for shipping)."""
    query = text("SELECT count(*) FROM message_log WHERE receipt_status = 'delivered'")
    for _ in range(600):
        async with stack.store.engine.connect() as conn:
            if (await conn.execute(query)).scalar_one() >= len(ids):
                await asyncio.sleep(1)
                return
        await asyncio.sleep(0.5)


async def _multi_week_journey(env: Any, stack: Any) -> None:
    """Paid, shipped after 20 h, delivered a day later, review and day-14 sale, to the end."""
    c = _customer(0)
    o = Order(
        order_id=f"ts-{uuid.uuid4().hex[:12]}",
        customer_id=c.customer_id,
        amount=1000,
        items=[OrderItem(name="양말", unit_price=1000)],
    )
    handle = await stack.journeys.order_paid(o, c)
    await env.sleep(timedelta(hours=20))
    await stack.journeys.order_shipped(o.order_id)
    await env.sleep(timedelta(days=1))
    await stack.journeys.order_delivered(o.order_id)
    await handle.result()


async def time_skipping_journey_seconds() -> float:
    """Wall time of the full multi-week post-purchase scenario (paid, shipped, delivered, review,
    sale on day 14) on the time-skipping server, server start excluded."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from durable_journeys.starter.devserver import find_binary
    from durable_journeys.starter.setup import register_search_attributes

    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=find_binary("temporal-test-server")
    )
    await register_search_attributes(env.client)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with embedded_stack(
                env.client,
                database_url=f"sqlite+aiosqlite:///{Path(tmp) / 't.db'}",
                receipt_timing=ReceiptTiming.BEFORE_RESPONSE,
                care_segment="off",
                task_queue=f"ts-{uuid.uuid4()}",
            ) as stack:
                async with stack.worker():
                    t0 = time.perf_counter()
                    await _multi_week_journey(env, stack)
                    return time.perf_counter() - t0
    finally:
        await env.shutdown()


def mean_of(a: Any, b: Any) -> Any:
    """The mean of two runs' figures, key by key (a number's mean; anything else as in ``a``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: mean_of(v, b[k]) if k in b else v for k, v in a.items()}
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return round((a + b) / 2, 2)
    return a


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    return a["journeys_per_s"] / b["journeys_per_s"] if a and b else None


def targets(r: dict[str, Any]) -> list[tuple[str, bool]]:
    """The performance issue's targets, each with whether this run met it."""
    peer_ = r["peer"]
    found: list[tuple[str, bool]] = []
    for name in ("sqlite", "postgres"):
        ours_ = r[name]
        if not ours_:
            continue
        found += [
            (f"{name}: throughput >= 0.8x the peer ({ratio(ours_, peer_):.2f})", ratio(ours_, peer_) >= 0.8),  # type: ignore[operator]
            (
                f"{name}: actions per journey <= the peer's ({ours_['actions']} vs {peer_['actions']})",
                ours_["actions"] <= peer_["actions"],
            ),
            (
                f"{name}: worker-process CPU <= 1.3x the peer's ({ours_['cpu_ms_per_journey']['worker']} vs "
                f"{peer_['cpu_ms_per_journey']['worker']} ms)",
                ours_["cpu_ms_per_journey"]["worker"] <= 1.3 * peer_["cpu_ms_per_journey"]["worker"],
            ),
            (
                f"{name}: shipped->provider p99 at half the saturating rate < 500 ms "
                f"({ours_['half_rate']['shipped_to_provider_ms_p99']:.0f} ms)",
                ours_["half_rate"]["shipped_to_provider_ms_p99"] < 500,
            ),
        ]
        gw = r.get(f"gateway_{name}")
        if gw:
            found += [
                (
                    f"{name}, gateway (no stage search): throughput >= 1.0x the peer ({ratio(gw, peer_):.2f})",
                    ratio(gw, peer_) >= 1.0,  # type: ignore[operator]
                ),
                (
                    f"{name}, gateway (no stage search): <= 10 actions per journey ({gw['actions']})",
                    gw["actions"] <= 10,
                ),
            ]
    return found


async def main(n: int) -> dict[str, Any]:
    configure_logging(json=False, level="ERROR")
    r: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "n": n}
    with tempfile.TemporaryDirectory() as tmp:
        systems: dict[str, Callable[[Client], Awaitable[dict[str, Any] | None]]] = {
            "bare": lambda client: bare(client, n),
            "peer": lambda client: peer(target_of(client), n),
            "sqlite": lambda client: ours(client, n, f"sqlite+aiosqlite:///{Path(tmp) / 'ours.db'}"),
            "gateway_sqlite": lambda client: ours(
                client, n, f"sqlite+aiosqlite:///{Path(tmp) / 'gw.db'}", timings=GATEWAY
            ),
            "postgres": lambda client: on_postgres(client, n),
            "gateway_postgres": lambda client: on_postgres(client, n, timings=GATEWAY),
            "scale_out": lambda client: on_postgres(client, n, worker_processes=2),
            # The peer runs again last, and ours are compared with the mean of its two runs: the
            # machine itself is faster in some minutes than in others.
            "peer_after": lambda client: peer(target_of(client), n),
        }
        only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))  # profiling: some systems only
        for name, run in systems.items():
            if only and name not in only:
                r[name] = None
                continue
            # Each system on a dev server of its own (the same binary and settings): one server
            # slows with every run it keeps in memory, and whatever ran later paid for it
            # (bench/README.md, change 16).
            env = await start_dev_server()
            try:
                r[name] = await run(env.client)
            finally:
                await env.shutdown()
        if os.environ.get("BENCH_SKIP_EXTRAS") != "1":
            env = await start_dev_server()
            try:
                target = target_of(env.client)
                r["rss_mb_per_1000_waiting"] = await memory_in_fresh_process(target, Path(tmp) / "mem.db", cache=None)
                r[f"rss_mb_per_1000_waiting_cache_{SMALL_CACHE}"] = await memory_in_fresh_process(
                    target, Path(tmp) / "mem2.db", cache=SMALL_CACHE
                )
            finally:
                await env.shutdown()
    if os.environ.get("BENCH_SKIP_EXTRAS") != "1":
        r["time_skipping_full_journey_test_s"] = await time_skipping_journey_seconds()
    if r["peer"] and r.get("peer_after"):
        r["peer_first"] = r["peer"]
        r["peer"] = mean_of(r["peer_first"], r["peer_after"])
    if not (r["bare"] and r["peer"]):
        return r
    for name in (
        "peer_first",
        "peer_after",
        "peer",
        "sqlite",
        "gateway_sqlite",
        "postgres",
        "gateway_postgres",
        "scale_out",
    ):
        r[f"ratio_{name}_to_bare"] = ratio(r.get(name), r["bare"])
        r[f"ratio_{name}_to_peer"] = ratio(r.get(name), r["peer"])
    r["targets"] = [{"target": t, "met": met} for t, met in targets(r)]
    return r


ROWS = (
    ("bare", "bare Temporal (trivial activities)"),
    ("peer_first", "hand-written peer, run first"),
    ("peer_after", "hand-written peer, run last"),
    ("peer", "hand-written peer, mean of both"),
    ("sqlite", "ours, SQLite"),
    ("gateway_sqlite", "ours, SQLite, gateway fallback, no stage search"),
    ("postgres", "ours, PostgreSQL"),
    ("gateway_postgres", "ours, PostgreSQL, gateway fallback, no stage search"),
    ("scale_out", "ours, PostgreSQL, 2 worker processes"),
)


def report(r: dict[str, Any]) -> str:
    lines = [f"N = {r['n']} post-purchase journeys, a fresh dev server each, {r['date']}", ""]
    lines.append(
        f"{'':40s} {'j/s':>6s} {'/bare':>6s} {'/peer':>6s} {'actions':>8s} {'events':>7s} {'p50 ms':>7s} {'p99 ms':>7s}"
    )
    for key, label in ROWS:
        x = r.get(key)
        if not x:
            continue
        half = x.get("half_rate")
        lat = (
            f"{half['shipped_to_provider_ms_p50']:7.0f} {half['shipped_to_provider_ms_p99']:7.0f}"
            if half
            else f"{'':7s} {'':7s}"
        )
        to_peer = r.get(f"ratio_{key}_to_peer")
        lines.append(
            f"{label:40s} {x['journeys_per_s']:6.1f} {ratio(x, r['bare']):6.2f} "
            f"{(f'{to_peer:6.2f}' if to_peer else '     -')} {x['actions']:8.1f} {x['history_events']:7.1f} {lat}"
        )
    lines += [
        "",
        "p50/p99: order.shipped to the provider's accepting the shipping message, at half the saturating rate",
        "",
    ]
    lines.append("CPU ms per journey, by process:")
    for key, label in ROWS:
        x = r.get(key)
        if x:
            cpu = ", ".join(f"{k} {v:.0f}" for k, v in x["cpu_ms_per_journey"].items() if v or k == "worker")
            lines.append(f"  {label:40s} {cpu}")
    lines += ["", "billable actions per journey, by kind (bare: saturated; the others: the paced run's journeys):"]
    for key, label in ROWS:
        x = r.get(key)
        if x:
            lines.append(f"  {label:40s} {x['actions_by_kind']}")
    if "rss_mb_per_1000_waiting" in r:
        lines += [
            "",
            f"worker RSS per 1,000 journeys waiting on a timer: {r['rss_mb_per_1000_waiting']:.1f} MB with all of them "
            f"cached, {r[f'rss_mb_per_1000_waiting_cache_{SMALL_CACHE}']:.1f} MB with a cache of {SMALL_CACHE}",
            f"full multi-week journey on the time-skipping server: {r['time_skipping_full_journey_test_s']:.2f} s",
        ]
    lines += ["", "targets (performance issue):"]
    lines += [f"  [{'met' if t['met'] else 'NOT MET'}] {t['target']}" for t in r["targets"]]
    return "\n".join(lines)


def readme_row(r: dict[str, Any]) -> str:
    def cell(key: str) -> str:
        x = r.get(key)
        if not x:
            return "n/a"
        cpu = x["cpu_ms_per_journey"]
        return (
            f"{x['journeys_per_s']:.1f} ({r[f'ratio_{key}_to_peer']:.2f}), {x['actions']:.1f} act, "
            f"w {cpu['worker']:.0f} ms, p99 {x['half_rate']['shipped_to_provider_ms_p99']:.0f}"
        )

    peer_ = r["peer"]
    return (
        f"| {r['date'][:10]} | {r['n']} | {r['bare']['journeys_per_s']:.1f} | {peer_['journeys_per_s']:.1f}, "
        f"{peer_['actions']:.1f} act, w {peer_['cpu_ms_per_journey']['worker']:.0f} ms | "
        + " | ".join(cell(k) for k in ("sqlite", "gateway_sqlite", "postgres", "gateway_postgres", "scale_out"))
        + " |\n"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory"]:  # one memory run, in its own process (see memory_in_fresh_process)
        print(asyncio.run(_memory_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))), flush=True)
        os._exit(0)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    result = asyncio.run(main(n))
    if "targets" not in result:  # BENCH_ONLY: a partial run, printed as it is and not recorded
        print(json.dumps(result, indent=2, default=str))
        os._exit(0)
    print(report(result))
    (HERE / "results.json").write_text(json.dumps(result, indent=2, default=str))
    if os.environ.get("BENCH_NO_ROW") != "1":
        with (HERE / "README.md").open("a") as f:
            f.write(readme_row(result))
    sys.stdout.flush()
    os._exit(0)  # temporalio/sdk-python#300
