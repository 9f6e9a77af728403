"""The bench's processes: starting the deployed parts, and the CPU each spends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx


def _cpu_seconds(pid: int) -> tuple[str, float] | None:
    """(command, user+system seconds) of ``pid``, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return comm, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


class CpuMeter:
    """CPU seconds by role: this process, the Temporal server, named child processes, the database.

    ``roles`` maps a role to the pids that play it ("sandbox": [pid], "workers": [pid, pid]);
    the Temporal server is this process's child named ``temporal``; the database is every
    process named ``postgres`` (SQLite runs inside the processes that use it).
    """

    def __init__(self, roles: Mapping[str, list[int]] | None = None) -> None:
        self.roles = dict(roles or {})

    def snapshot(self) -> dict[str, float]:
        me = os.getpid()
        used = {"worker": 0.0, "temporal": 0.0, "postgres": 0.0, **dict.fromkeys(self.roles, 0.0)}
        role_of = {pid: role for role, pids in self.roles.items() for pid in pids}
        for pid in _all_pids():
            got = _cpu_seconds(pid)
            if got is None:
                continue
            comm, seconds = got
            if pid == me:
                used["worker"] += seconds
            elif pid in role_of:
                used[role_of[pid]] += seconds
            elif comm == "temporal":
                used["temporal"] += seconds
            elif comm.startswith("postgres"):
                used["postgres"] += seconds
        return used

    @staticmethod
    def per_journey(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
        return {k: round((after[k] - before[k]) * 1000 / n, 1) for k in after}


def spawn(args: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env={**os.environ, **env})


async def wait_healthy(*urls: str) -> None:
    async with httpx.AsyncClient() as http:
        for url in urls:
            for _ in range(400):
                try:
                    if (await http.get(url)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"{url} did not come up")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
