"""The database's settings: one place for local state, the store's URL and how long to wait for it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator


def default_data_dir() -> Path:
    """Where local state lives unless ``JOURNEYS_DATA_DIR`` says otherwise (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "durable-journeys"


def without_password(url: Any) -> Any:
    """``url`` with its password masked (unchanged if it is not a URL)."""
    from sqlalchemy.engine import make_url  # here: reading the settings loads no SQLAlchemy
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(str(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable>"


class DatabaseSettings(BaseModel):
    """``JOURNEYS_DATA_DIR``, ``JOURNEYS_DATABASE_URL`` (default: SQLite in the data directory) and its pool."""

    # One place for local state, the same for every process whatever its working directory.
    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    database_url: str = Field(default="", description="default: SQLite file journeys.db in data_dir")
    database_connect_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Connections each process keeps open (PostgreSQL: one server backend each). A process never
    # opens more; a call waits for one to come free. The default is the store's own (POOL_SIZE).
    database_pool_size: int = Field(default=15, ge=1, le=200)

    @model_validator(mode="after")
    def _default_database(self) -> Any:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'journeys.db'}"
        return self
