"""Which journeys run and what they send from: the shop's own journeys, template files, consent notices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field


class JourneySettings(BaseModel):
    """``JOURNEYS_JOURNEYS``, ``JOURNEYS_TEMPLATES_DIR``, ``JOURNEYS_CONSENT_NOTICES``."""

    # The biennial consent notice to every customer who opted in to ads (Korea's Network Act).
    consent_notices: bool = True
    # Template files, one TOML file per journey (default: the reference journeys' packaged files).
    templates_dir: Path | None = Field(
        default=None, description="template files added to the reference journeys' (a same-named template replaces one)"
    )
    # The shop's own journeys, "module:Class" (JSON list): the worker runs them, the facade routes
    # events to them, and their templates are checked at start with the reference journeys'.
    journeys: list[Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", max_length=200)]] = Field(
        default_factory=list, max_length=50, description='your journey classes, e.g. ["shop.welcome:WelcomeJourney"]'
    )
