"""The shop's pytest setup: the kit finds the shop's templates beside the reference ones, and its fax channel."""

import os
from pathlib import Path

os.environ.setdefault("JOURNEYS_TEMPLATES_DIR", str(Path(__file__).parent / "shop" / "templates"))
os.environ.setdefault("JOURNEYS_PLUGINS", '["shop.fax"]')  # the shop's own channel and provider
os.environ.setdefault("JOURNEYS_ROUTES", '{"fax": ["fax"]}')
os.environ.setdefault("JOURNEYS_FAX_HEADER", "DURABLE SHOP")
