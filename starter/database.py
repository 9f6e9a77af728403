"""The store from ``JOURNEYS_DATABASE_URL``: made, reached and migrated, or one line naming the setting."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from durable_journeys.activities import Store
from durable_journeys.providers import ConfigError
from durable_journeys.starter.settings import Settings


def build_store(settings: Settings, *, create: bool = True) -> Store:
    """The store for the configured database.

    A new SQLite file is made readable by its owner only (it holds customers' contact details).

    Args:
        settings: the settings.
        create: make a missing SQLite file (and its directory); False for read-only commands.

    Raises:
        ConfigError: the URL does not parse or names a driver that is not installed; without
            ``create``, the SQLite file does not exist.
    """
    try:
        url = make_url(settings.database_url) if "://" in settings.database_url else None
    except ArgumentError:
        url = None
    drivers = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
    if url is not None and drivers.get(url.get_backend_name(), url.get_driver_name()) != url.get_driver_name():
        raise ConfigError(
            f"JOURNEYS_DATABASE_URL names the synchronous driver {url.drivername!r}; the store needs an async one: "
            "sqlite+aiosqlite:///path/journeys.db or postgresql+asyncpg://user@host/db"
        )
    if url is not None and url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database).expanduser()
        if not path.exists():
            if not create:
                raise ConfigError(
                    f"no store at {path}: JOURNEYS_DATABASE_URL names a file that does not exist; point it at "
                    "the worker's store (or run `journeys db upgrade` to make an empty one)"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        return Store.from_url(
            settings.database_url,
            connect_timeout=settings.database_connect_timeout_seconds,
            pool_size=settings.database_pool_size,
        )
    except (ImportError, ArgumentError) as exc:
        missing = getattr(exc, "name", None) or "its driver"
        raise ConfigError(
            f"JOURNEYS_DATABASE_URL cannot be used ({missing} is not installed or the URL does not parse); "
            "use postgresql+asyncpg://user@host/db or sqlite+aiosqlite:///path/journeys.db"
        ) from None


async def open_store(settings: Settings, *, create: bool = True) -> Store:
    """The store, connected and migrated to the newest schema (``create``: see :func:`build_store`).

    Raises:
        ConfigError: the database cannot be reached or refuses us (one line, no password).
    """
    store = build_store(settings, create=create)
    url = make_url(settings.database_url)
    where = f"database at {url.host or 'localhost'}:{url.port or 5432}" if url.host else f"database {url.database}"
    hint = "check JOURNEYS_DATABASE_URL"
    try:
        async with asyncio.timeout(settings.database_connect_timeout_seconds * 3):
            await store.migrate()
    except TimeoutError:
        await store.close()
        seconds = settings.database_connect_timeout_seconds
        raise ConfigError(f"{where} did not answer within {seconds:g} s; {hint}") from None
    except (OSError, DBAPIError) as exc:
        await store.close()
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
            raise ConfigError(f"{where} refused the connection; {hint}") from None
        raise ConfigError(f"{where} failed: {type(cause).__name__}; {hint}") from None
    return store
