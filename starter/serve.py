"""Serve an ASGI app with uvicorn inside the running event loop (demo, dev, end-to-end tests)."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from durable_journeys.providers import ConfigError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_free_port(port: int, option: str, *, host: str = "127.0.0.1") -> None:
    """Fail in one line, naming the option to change, when ``port`` is already taken.

    Raises:
        ConfigError: something listens on ``host:port`` already.
    """
    with socket.socket() as sock:
        # As servers do (the Temporal server and uvicorn among them): connections of a server
        # that just stopped (TIME_WAIT) do not hold the port, only a listener does.
        if hasattr(socket, "SO_REUSEADDR") and not sys.platform.startswith("win"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise ConfigError(f"port {port} on {host} is already in use; choose another with {option}") from None


@asynccontextmanager
async def serving(app: Any, *, host: str = "127.0.0.1", port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` until the block ends; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"server on {host}:{port} stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
