"""``python -m bench [N]``: journey throughput as a ratio of bare Temporal, cost, memory, test speed.

Everything runs in one process on one embedded dev server, so the ratios compare like with like.
Prints a table, writes ``bench/results.json`` and appends a row to ``bench/README.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bench._bare import BareInput, BarePostPurchase, bare_send
from durable_journeys.activities import Channel, CustomerProfile, Store
from durable_journeys.activities.logs import configure_logging
from durable_journeys.providers.sandbox import ReceiptTiming
from durable_journeys.starter.assembly import RESTRICTIONS
from durable_journeys.starter.devserver import start_dev_server
from durable_journeys.starter.stack import Stack, embedded_stack
from durable_journeys.workflows import JourneyResult, Order, OrderItem, Outcome, PostPurchaseSettings

HERE = Path(__file__).parent
SMALL_CACHE = 100  # max_cached_workflows for the second memory run: memory follows the cache
REVIEW_DELAY = 1.0
SALE_AFTER = 2.0
TIMINGS = PostPurchaseSettings(
    review_delay=timedelta(seconds=REVIEW_DELAY),
    sale_after_delivery=timedelta(seconds=SALE_AFTER),
    receipt_timeout=timedelta(seconds=30),
    review_hours_kst=None,
)
POSTGRES_URL = os.environ.get("JOURNEYS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BILLABLE = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "start",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signal",
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: "activity",  # every attempt is billed
    EventType.EVENT_TYPE_TIMER_STARTED: "timer",
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "upsert",
    EventType.EVENT_TYPE_MARKER_RECORDED: "marker",
}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(stat: str) -> tuple[str, int, float]:
    """(command, parent pid, user+system seconds) from a /proc/<pid>/stat line."""
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process() -> dict[str, float]:
    """CPU seconds so far of this process ("ours"), the dev server ("temporal") and other children."""
    me = os.getpid()
    used: dict[str, float] = dict.fromkeys(("ours", "temporal", "other"), 0.0)
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            comm, ppid, seconds = _cpu_seconds(stat_file.read_text())
        except (OSError, ValueError):
            continue
        if int(stat_file.parent.name) == me:
            used["ours"] += seconds
        elif ppid == me:
            used["temporal" if comm == "temporal" else "other"] += seconds
    return used


def cpu_ms_per_journey(before: dict[str, float], n: int) -> dict[str, float]:
    after = cpu_by_process()
    return {k: round((after[k] - before[k]) * 1000 / n, 1) for k in ("ours", "temporal", "other")}


async def costs(handle: WorkflowHandle[Any, Any]) -> tuple[int, Counter[str]]:
    events = [e async for e in handle.fetch_history_events()]
    return len(events), Counter(BILLABLE[e.event_type] for e in events if e.event_type in BILLABLE)


async def bare(client: Client, n: int) -> dict[str, Any]:
    queue = f"bare-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[BarePostPurchase], activities=[bare_send]):
        cpu0 = cpu_by_process()
        t0 = time.perf_counter()
        handles = await asyncio.gather(
            *(
                client.start_workflow(
                    BarePostPurchase.run,
                    BareInput(REVIEW_DELAY, SALE_AFTER),
                    id=f"bare-{uuid.uuid4()}",
                    task_queue=queue,
                )
                for _ in range(n)
            )
        )
        await asyncio.gather(*(h.signal(BarePostPurchase.event, "shipped") for h in handles))
        await asyncio.gather(*(h.signal(BarePostPurchase.event, "delivered") for h in handles))
        await asyncio.gather(*(h.result() for h in handles))
        elapsed = time.perf_counter() - t0
        cpu = cpu_ms_per_journey(cpu0, n)
        events, actions = await costs(handles[0])
    return {
        "journeys_per_s": n / elapsed,
        "seconds": elapsed,
        "history_events": events,
        "actions": sum(actions.values()),
        "actions_by_kind": dict(actions),
        "cpu_ms_per_journey": cpu,
    }


def _customer(i: int) -> CustomerProfile:
    consented = datetime.now(UTC) - timedelta(days=1)
    return CustomerProfile(
        customer_id=f"b-{i}-{uuid.uuid4().hex[:6]}",
        name="김하늘",
        phone="010-1234-5678",
        marketing_consent={Channel.SMS: consented},
        night_consent_at=consented,
    )


async def ours(
    client: Client, n: int, database_url: str, timings: PostPurchaseSettings = TIMINGS, **worker: Any
) -> dict[str, Any]:
    """Everything in this process: worker, facade, sandbox and webhook app (as the tests run it).

    ``worker``: options for the worker (``workflow_runner``: the sandbox's cost, see ``main``).
    """
    async with embedded_stack(
        client,
        database_url=database_url,
        http=True,
        receipt_timing=ReceiptTiming.AFTER_RESPONSE,
        receipt_delay=timedelta(milliseconds=10),
        post_purchase=timings,
        care_segment="off",
        task_queue=f"ours-{uuid.uuid4()}",
    ) as stack:
        async with stack.worker(**worker):
            return await _journeys(stack.journeys, n)


def unchecked_runner() -> SandboxedWorkflowRunner:
    """The sandbox as workers ran it before 1.0: the journeys' own modules passed through, unchecked."""
    return SandboxedWorkflowRunner(restrictions=RESTRICTIONS.with_passthrough_modules("durable_journeys.workflows"))


async def ours_split(client: Client, n: int, database_url: str) -> dict[str, Any]:
    """As deployed: the sandbox provider and the webhook app in their own processes (`journeys
    sandbox`, `journeys webhooks`), the worker and the app's facade here."""
    from durable_journeys.starter.assembly import build_activities, build_providers, build_worker
    from durable_journeys.starter.journeys import Journeys
    from durable_journeys.starter.serve import free_port
    from durable_journeys.starter.settings import SECRET_SETTINGS, Settings, dev_settings

    sandbox_port, webhook_port = free_port(), free_port()
    settings = dev_settings(
        Settings(
            database_url=database_url,
            sandbox_url=f"http://127.0.0.1:{sandbox_port}",
            temporal_address=client.service_client.config.target_host,
            task_queue=f"split-{uuid.uuid4()}",
        )
    )
    env = {
        **os.environ,
        "JOURNEYS_DATABASE_URL": database_url,
        "JOURNEYS_LOG_LEVEL": "ERROR",
        "JOURNEYS_TEMPORAL_ADDRESS": settings.temporal_address,
        **{f"JOURNEYS_{name.upper()}": getattr(settings, name).get_secret_value() for name in SECRET_SETTINGS},
    }
    store = Store.from_url(database_url)
    await store.migrate()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "durable_journeys.starter.cli",
                "sandbox",
                "--port",
                str(sandbox_port),
                "--webhook-url",
                f"http://127.0.0.1:{webhook_port}/webhooks/sandbox",
            ],
            env=env,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "durable_journeys.starter.cli", "webhooks", "--port", str(webhook_port)], env=env
        ),
    ]
    try:
        async with httpx.AsyncClient() as http:
            for port in (sandbox_port, webhook_port):
                for _ in range(200):
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
        journeys = Journeys(client, store, task_queue=settings.task_queue, post_purchase=TIMINGS, care_segment="off")
        activities = build_activities(settings, store, build_providers(settings, store))
        async with build_worker(client, activities, task_queue=settings.task_queue):
            return await _journeys(journeys, n)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        await store.close()


async def _journeys(journeys: Any, n: int) -> dict[str, Any]:
    customers = [_customer(i) for i in range(n)]
    orders = [
        Order(
            order_id=f"bo-{uuid.uuid4().hex[:12]}",
            customer_id=c.customer_id,
            amount=1000,
            items=[OrderItem(name="양말", unit_price=1000)],
        )
        for c in customers
    ]
    cpu0 = cpu_by_process()
    t0 = time.perf_counter()
    handles = await asyncio.gather(*(journeys.order_paid(o, c) for o, c in zip(orders, customers)))
    await asyncio.gather(*(journeys.order_shipped(o.order_id) for o in orders))
    await asyncio.gather(*(journeys.order_delivered(o.order_id) for o in orders))
    results: list[JourneyResult] = await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - t0
    cpu = cpu_ms_per_journey(cpu0, n)
    events, actions = await costs(handles[0])
    latencies = []
    for r in results:
        shipped = next(e for e in r.timeline if e.step == "order.shipped")
        sent = next(e for e in r.timeline if e.step == "shipping_started" and e.outcome is Outcome.SENT)
        latencies.append((sent.at - shipped.at).total_seconds() * 1000)
    latencies.sort()
    return {
        "journeys_per_s": n / elapsed,
        "seconds": elapsed,
        "history_events": events,
        "actions": sum(actions.values()),
        "actions_by_kind": dict(actions),
        "event_to_send_ms_p50": statistics.median(latencies),
        "event_to_send_ms_p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "completed": sum(r.outcome == "completed" for r in results),
        "cpu_ms_per_journey": cpu,
    }


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
        async with stack.worker(max_cached_workflows=cache or k + 100):
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


async def postgres_url() -> str | None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = Store.from_url(POSTGRES_URL)
    try:
        async with admin.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OSError:
        return None
    finally:
        await admin.close()
    return schema


async def main(n: int) -> dict[str, Any]:
    configure_logging(json=False, level="ERROR")
    env = await start_dev_server()
    try:
        client = env.client
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            base = await bare(client, n)
            on_sqlite = await ours(client, n, sqlite_url)
            # Gateway fallback: the provider falls back itself; the journey waits for no receipt.
            gateway_timings = TIMINGS.model_copy(update={"fallback": {"*": "gateway"}})
            gateway = await ours(client, n, f"sqlite+aiosqlite:///{Path(tmp) / 'gateway.db'}", gateway_timings)
            # What the sandbox's checks of the journeys' code cost: the same run with it passed through.
            unchecked = await ours(
                client, n, f"sqlite+aiosqlite:///{Path(tmp) / 'unchecked.db'}", workflow_runner=unchecked_runner()
            )
            split = await ours_split(client, n, f"sqlite+aiosqlite:///{Path(tmp) / 'split.db'}")
            schema = await postgres_url()
            on_pg = None
            if schema:
                on_pg = await ours_pg(client, n, POSTGRES_URL, schema)
            target = client.service_client.config.target_host
            mem = await memory_in_fresh_process(target, Path(tmp) / "mem.db", cache=None)
            mem_small_cache = await memory_in_fresh_process(target, Path(tmp) / "mem2.db", cache=SMALL_CACHE)
    finally:
        await env.shutdown()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "n": n,
        "bare": base,
        "sqlite": on_sqlite,
        "postgres": on_pg,
        "split_sqlite": split,
        "gateway_sqlite": gateway,
        "unchecked_sqlite": unchecked,
        "sandbox_checks_throughput_ratio": on_sqlite["journeys_per_s"] / unchecked["journeys_per_s"],
        "ratio_sqlite": on_sqlite["journeys_per_s"] / base["journeys_per_s"],
        "ratio_gateway_sqlite": gateway["journeys_per_s"] / base["journeys_per_s"],
        "ratio_split_sqlite": split["journeys_per_s"] / base["journeys_per_s"],
        "ratio_postgres": on_pg["journeys_per_s"] / base["journeys_per_s"] if on_pg else None,
        "rss_mb_per_1000_waiting": mem,
        f"rss_mb_per_1000_waiting_cache_{SMALL_CACHE}": mem_small_cache,
        "time_skipping_full_journey_test_s": await time_skipping_journey_seconds(),
    }


async def ours_pg(client: Client, n: int, url: str, schema: str) -> dict[str, Any]:
    import durable_journeys.activities.store._store as store_mod

    original = store_mod.Store.from_url.__func__  # type: ignore[attr-defined]

    def with_schema(cls: type[Store], u: str, **kw: Any) -> Store:
        kw.setdefault("connect_args", {"server_settings": {"search_path": schema}})
        store: Store = original(cls, u, **kw)
        return store

    store_mod.Store.from_url = classmethod(with_schema)  # type: ignore[method-assign,assignment,arg-type]
    try:
        return await ours(client, n, url)
    finally:
        store_mod.Store.from_url = classmethod(original)  # type: ignore[method-assign,assignment]
        admin = Store.from_url(POSTGRES_URL)
        async with admin.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.close()


def report(r: dict[str, Any]) -> str:
    pg = r["postgres"]
    lines = [
        f"N = {r['n']} post-purchase journeys on the embedded dev server ({r['date']})",
        f"bare Temporal      {r['bare']['journeys_per_s']:8.1f} journeys/s   history {r['bare']['history_events']:3d} events, "
        f"{r['bare']['actions']} actions",
        f"ours, SQLite       {r['sqlite']['journeys_per_s']:8.1f} journeys/s   ratio {r['ratio_sqlite']:.2f}   "
        f"event->send p50 {r['sqlite']['event_to_send_ms_p50']:.0f} ms p99 {r['sqlite']['event_to_send_ms_p99']:.0f} ms",
    ]
    sp = r["split_sqlite"]
    lines.append(
        f"ours, SQLite, provider+webhooks in own processes {sp['journeys_per_s']:6.1f} journeys/s   "
        f"ratio {r['ratio_split_sqlite']:.2f}   event->send p50 {sp['event_to_send_ms_p50']:.0f} ms "
        f"p99 {sp['event_to_send_ms_p99']:.0f} ms"
    )
    gw = r["gateway_sqlite"]
    lines.append(
        f"ours, SQLite, gateway fallback {gw['journeys_per_s']:6.1f} journeys/s   ratio {r['ratio_gateway_sqlite']:.2f}   "
        f"history {gw['history_events']} events, {gw['actions']} actions"
    )
    un = r["unchecked_sqlite"]
    lines.append(
        f"sandbox checks of the journeys' code: {r['sqlite']['journeys_per_s']:.1f} journeys/s checked, "
        f"{un['journeys_per_s']:.1f} passed through unchecked (ratio {r['sandbox_checks_throughput_ratio']:.2f})"
    )
    if pg:
        lines.append(
            f"ours, PostgreSQL   {pg['journeys_per_s']:8.1f} journeys/s   ratio {r['ratio_postgres']:.2f}   "
            f"event->send p50 {pg['event_to_send_ms_p50']:.0f} ms p99 {pg['event_to_send_ms_p99']:.0f} ms"
        )
    for name in ("bare", "sqlite", "unchecked_sqlite", "gateway_sqlite", "split_sqlite", "postgres"):
        if r[name]:
            cpu = r[name]["cpu_ms_per_journey"]
            lines.append(
                f"CPU per journey, {name:12s}: this process {cpu['ours']:6.1f} ms, Temporal server "
                f"{cpu['temporal']:6.1f} ms, other processes {cpu['other']:6.1f} ms"
            )
    lines += [
        f"ours per journey: {r['sqlite']['history_events']} history events, {r['sqlite']['actions']} actions "
        f"{r['sqlite']['actions_by_kind']}",
        f"worker RSS per 1,000 journeys waiting on a timer: {r['rss_mb_per_1000_waiting']:.1f} MB with all of "
        f"them cached, {r[f'rss_mb_per_1000_waiting_cache_{SMALL_CACHE}']:.1f} MB with a cache of {SMALL_CACHE}",
        f"full multi-week journey on the time-skipping server: {r['time_skipping_full_journey_test_s']:.2f} s",
    ]
    return "\n".join(lines)


def _cpu_cell(r: dict[str, Any]) -> str:
    cpu = r["cpu_ms_per_journey"]
    return f"{cpu['ours'] + cpu['other']:.0f}+{cpu['temporal']:.0f}"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory"]:  # one memory run, in its own process (see memory_in_fresh_process)
        print(asyncio.run(_memory_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))), flush=True)
        os._exit(0)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    result = asyncio.run(main(n))
    print(report(result))
    (HERE / "results.json").write_text(json.dumps(result, indent=2, default=str))
    pg = result["postgres"]
    row = (
        f"| {result['date'][:10]} | {n} | {result['bare']['journeys_per_s']:.1f} | "
        f"{result['sqlite']['journeys_per_s']:.1f} ({result['ratio_sqlite']:.2f}) | "
        f"{result['split_sqlite']['journeys_per_s']:.1f} ({result['ratio_split_sqlite']:.2f}) | "
        + (f"{pg['journeys_per_s']:.1f} ({result['ratio_postgres']:.2f})" if pg else "n/a")
        + f" | {result['sqlite']['event_to_send_ms_p50']:.0f}/{result['sqlite']['event_to_send_ms_p99']:.0f} | "
        f"{result['sqlite']['history_events']} / {result['sqlite']['actions']} | "
        f"{result['rss_mb_per_1000_waiting']:.1f} ({result[f'rss_mb_per_1000_waiting_cache_{SMALL_CACHE}']:.1f} "
        f"with cache {SMALL_CACHE}) | {result['time_skipping_full_journey_test_s']:.2f} | "
        f"{_cpu_cell(result['bare'])} / {_cpu_cell(result['sqlite'])} | "
        f"{result['gateway_sqlite']['journeys_per_s']:.1f} ({result['ratio_gateway_sqlite']:.2f}), "
        f"{_cpu_cell(result['gateway_sqlite'])}, {result['gateway_sqlite']['history_events']} events |\n"
    )
    with (HERE / "README.md").open("a") as f:
        f.write(row)
    sys.stdout.flush()
    os._exit(0)  # temporalio/sdk-python#300
