"""The shop's pytest setup: the kit finds the shop's templates beside the reference ones."""

import os
from pathlib import Path

os.environ.setdefault("JOURNEYS_TEMPLATES_DIR", str(Path(__file__).parent / "shop" / "templates"))
