"""Several processes migrating a fresh database at once: all succeed, the schema is made once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

import durable_journeys.activities.store as store_module
from tests.helpers import POSTGRES_URL

PROCESSES = 3

# The newest migration's revision: every upgrade ends there.
HEAD = max(p.name[:4] for p in (Path(store_module.__file__).parent / "migrations" / "versions").glob("0*.py"))


def upgrade_in_parallel(database_url: str, cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")},
        "JOURNEYS_DATABASE_URL": database_url,
        "JOURNEYS_LOG_FORMAT": "json",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "durable_journeys.starter.cli", "db", "upgrade"],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    return [subprocess.CompletedProcess(p.args, p.wait(120), *p.communicate()) for p in procs]


def test_parallel_upgrades_of_a_fresh_sqlite_file(tmp_path: Path) -> None:
    for done in upgrade_in_parallel(f"sqlite+aiosqlite:///{tmp_path / 'journeys.db'}", tmp_path):
        assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.postgres
async def test_parallel_upgrades_of_a_fresh_postgres_database(tmp_path: Path) -> None:
    admin_dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"journeys_migrate_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(admin_dsn)
    except (OSError, asyncpg.PostgresError):
        if os.environ.get("CI"):
            raise
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
        results = await asyncio.to_thread(upgrade_in_parallel, url, tmp_path)
        for done in results:
            assert done.returncode == 0, done.stderr[-2000:]
        conn = await asyncpg.connect(admin_dsn.rsplit("/", 1)[0] + f"/{name}")
        try:
            assert await conn.fetchval("SELECT version_num FROM alembic_version") == HEAD
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
