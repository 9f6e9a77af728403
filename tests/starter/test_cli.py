"""The ``journeys`` command line (commands that need no server)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from durable_journeys.providers import ConfigError
from durable_journeys.starter.cli import app
from durable_journeys.starter.serve import free_port, require_free_port
from durable_journeys.starter.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_journeys_bench_runs_the_benchmark_from_the_source_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], Path]] = []
    monkeypatch.setattr(subprocess, "call", lambda args, cwd: calls.append((args, cwd)) or 0)
    result = CliRunner().invoke(app, ["bench", "50"])
    assert result.exit_code == 0, result.output
    assert calls == [([sys.executable, "-m", "bench", "50"], ROOT)]


# -- mistakes end in one line (or typer's usage message), never a traceback ----------------------

PASSWORD = "hunter2-do-not-print"


def journeys(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    return subprocess.run(
        [sys.executable, "-m", "durable_journeys.starter.cli", *args],
        env={**base, **(env or {})},
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.mark.parametrize(
    "args",
    [["demo", "--ui-port", "abc"], ["nope"], ["inspect"], ["webhooks", "--port", "x"], ["db", "downgrade"]],
    ids=" ".join,
)
def test_usage_mistakes_print_the_usage_message_not_a_traceback(args: list[str]) -> None:
    done = journeys(*args)
    assert done.returncode == 2
    assert "Usage: journeys" in done.stderr and "Error:" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "command", ["demo", "worker", "webhooks", "sandbox", "dev", "setup", "inspect", "bench", "reports"]
)
def test_help_has_no_bool_metavars_and_every_option_is_explained(command: str) -> None:
    done = journeys(command, "--help")
    assert done.returncode == 0 and "<bool>" not in done.stdout
    options = [line for line in done.stdout.splitlines() if line.strip().startswith("--")]
    assert all(len(line.split("  ", 1)) == 2 and line.split("  ", 1)[1].strip() for line in options), done.stdout
    assert "Environment:" in done.stdout
    if command in ("worker", "webhooks", "setup", "inspect", "reports"):  # they connect to Temporal
        listed = " ".join(done.stdout.split())
        temporal = [f"JOURNEYS_{n.upper()}" for n in Settings.model_fields if n.startswith("temporal_")]
        assert all(name in listed for name in temporal), (command, listed)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"JOURNEYS_TEMPORAL_ADRESS": "x:1"},
            "JOURNEYS_TEMPORAL_ADRESS is not a setting; did you mean JOURNEYS_TEMPORAL_ADDRESS?",
        ),
        ({"JOURNEYS_LOG_LEVEL": "LOUD"}, "JOURNEYS_LOG_LEVEL:"),
        ({"JOURNEYS_GRACEFUL_SHUTDOWN_SECONDS": "soon"}, "JOURNEYS_GRACEFUL_SHUTDOWN_SECONDS:"),
        ({"JOURNEYS_TEMPORAL_TLS": "maybe"}, "JOURNEYS_TEMPORAL_TLS:"),
    ],
    ids=["typo", "log-level", "number", "bool"],
)
def test_a_bad_environment_is_one_line_naming_the_variable(environ: dict[str, str], expected: str) -> None:
    done = journeys("inspect", "x", env=environ)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [f"journeys: {done.stderr.strip()[10:]}"]
    assert expected in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("dotenv", "expected"),
    [
        ("JOURNEYS_GRACEFUL_SHUTDOWN_SECONDS=abc\n", "JOURNEYS_GRACEFUL_SHUTDOWN_SECONDS:"),
        ("JOURNEYS_BOGUS=1\n", "JOURNEYS_BOGUS in .env is not a setting"),
        (
            "OTHER_APP_KEY=1\nJOURNEYS_TEMPORAL_ADRESS=x:1\n",
            "JOURNEYS_TEMPORAL_ADRESS in .env is not a setting; did you",
        ),
    ],
)
def test_a_bad_dotenv_is_one_line(tmp_path: Path, dotenv: str, expected: str) -> None:
    (tmp_path / ".env").write_text(dotenv)
    done = journeys("inspect", "x", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and expected in done.stderr


def _listener() -> socket.socket:
    """A port that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def test_connection_problems_are_one_line_naming_the_setting_and_no_password() -> None:
    silent = _listener()
    closed = free_port()
    cases = [
        (
            {"JOURNEYS_DATABASE_URL": f"postgresql+asyncpg://u:{PASSWORD}@127.0.0.1:{closed}/test"},
            ["db", "upgrade"],
            f"database at 127.0.0.1:{closed} refused the connection; check JOURNEYS_DATABASE_URL",
        ),
        (
            {
                "JOURNEYS_DATABASE_URL": f"postgresql+asyncpg://u:{PASSWORD}@127.0.0.1:{silent.getsockname()[1]}/test",
                "JOURNEYS_DATABASE_CONNECT_TIMEOUT_SECONDS": "1",
            },
            ["db", "upgrade"],
            "did not answer within 1 s",
        ),
        (
            {"JOURNEYS_DATABASE_URL": f"postgresql+psycopg2://u:{PASSWORD}@127.0.0.1/test"},
            ["db", "upgrade"],
            "JOURNEYS_DATABASE_URL names the synchronous driver",
        ),
        (
            {"JOURNEYS_TEMPORAL_ADDRESS": f"127.0.0.1:{closed}"},
            ["setup"],
            f"Temporal at 127.0.0.1:{closed}: connection refused; check JOURNEYS_TEMPORAL_ADDRESS",
        ),
    ]
    try:
        for env, args, expected in cases:
            done = journeys(*args, env=env)
            assert done.returncode == 2, done.stderr[-500:]
            assert len(done.stderr.strip().splitlines()) == 1 and expected in done.stderr, done.stderr[-500:]
            assert PASSWORD not in done.stderr + done.stdout
    finally:
        silent.close()


def test_a_taken_port_is_one_line_naming_the_option() -> None:
    taken = _listener()
    key = "kR7-vQ2_zX9pL4mN8bT1wY6cH3jF5sD0aE"
    try:
        port = str(taken.getsockname()[1])
        done = journeys(
            "sandbox", "--port", port, env={"JOURNEYS_SANDBOX_API_KEY": key, "JOURNEYS_SANDBOX_WEBHOOK_SECRET": key}
        )
        demo = journeys("demo", "--ui-port", port)
    finally:
        taken.close()
    assert (
        done.returncode == 2
        and done.stderr.strip() == f"journeys: port {port} on 127.0.0.1 is already in use; choose another with --port"
    )
    assert demo.returncode == 2 and "choose another with --ui-port" in demo.stderr


@pytest.mark.devserver
def test_the_demo_runs_every_journey_and_exits(tmp_path: Path) -> None:
    """README's first command: every timeline printed, no dead UI links, and it ends by itself."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "durable_journeys.starter.cli",
            "demo",
            "--port",
            str(free_port()),
            "--ui-port",
            str(free_port()),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=150,
        env={k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count(" -> ") == 13 and "-> completed" in done.stdout and "exited:purchase" in done.stdout
    assert "/namespaces/default/workflows/" not in done.stdout and "add --keep" in done.stdout
    # demo-c7: the cart's push and coupon fill the (compressed) week's two ad slots, so the care
    # banner is capped and the recent-buyer sale waits for the window, then goes out.
    lines = [line.split() for line in done.stdout.splitlines()]
    assert ["care_recommendation", "sms", "skipped", "frequency_cap"] in [line[1:] for line in lines]
    deferred = [line for line in lines if line[1:5] == ["recent_buyer_sale", "sms", "deferred", "frequency_cap"]]
    assert len(deferred) == 1 and deferred[0][-1] == "KST"
    sent = [line for line in lines if line[1:4] == ["recent_buyer_sale", "sms", "sent"]]
    assert len(sent) == 4  # demo-c1, c2, c3 at once, and demo-c7 once its window freed
    # The report ends with the experiment's verdict: 6 of the 8 shoppers forced into 12h bought.
    assert re.search(r"^verdict: 12h converts \d+\.\dx 24h, significant at 95 %", done.stdout, re.MULTILINE)
    assert re.search(r"^holdout +holdout +2 +0 ", done.stdout, re.MULTILINE)


def test_a_shared_dotenv_with_other_programs_names_is_fine(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgres://other-app\nSECRET_KEY=theirs\nJOURNEYS_LOG_LEVEL=debug\n")
    done = journeys("db", "upgrade", cwd=tmp_path, env={"JOURNEYS_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 0, done.stderr[-500:]
    assert (tmp_path / "data" / "journeys.db").is_file()


def test_a_port_whose_server_just_stopped_is_free() -> None:
    """Running the demo again right after it stopped: its closed connections (TIME_WAIT) hold no port."""
    server = _listener_on(0)  # like the Temporal server and uvicorn: SO_REUSEADDR
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server closes first: its side of the connection waits in TIME_WAIT
    client.close()
    server.close()
    require_free_port(port, "--port")  # raises if the port were still taken
    with pytest.raises(ConfigError, match=f"port {port} .* --port"):
        again = _listener_on(port)
        try:
            require_free_port(port, "--port")
        finally:
            again.close()


def _listener_on(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1)
    return sock
