"""A shop's plug-in from the settings' side: named in JOURNEYS_PLUGINS, routed, configured, built.

Also: every contact-policy rule is a setting, and each mistake is one line naming the variable.
"""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from datetime import time, timedelta
from pathlib import Path

import pytest

from durable_journeys.activities.store import Store
from durable_journeys.providers import Channel, ConfigError, Purpose
from durable_journeys.starter.assembly import build_providers, send_queues
from durable_journeys.starter.settings import Settings, load_settings

PLUGIN = """
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from durable_journeys.providers import SendResult, SendStatus
from durable_journeys.providers.channels import ChannelSpec
from durable_journeys.providers.common import NoReceipts
from durable_journeys.providers.plugins import ProviderPlugin, register_provider


class PagerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEYS_{NAME}_", extra="ignore")
    token: str = ""
    rate: float = Field(default=0, ge=0)


class Pager(NoReceipts):
    gateway_channels = frozenset()

    def __init__(self, name, token):
        self.name, self.token = name, token

    async def send(self, msg):
        return SendResult(status=SendStatus.ACCEPTED)


def problem(settings, channels, webhooks):
    return None if settings.token else "JOURNEYS_{NAME}_TOKEN is not set: the pager service's token"


register_provider(
    ProviderPlugin(
        "{name}",
        PagerSettings,
        lambda settings, context: Pager("{name}", settings.token),
        problem=problem,
        sends_per_second=lambda settings: settings.rate or None,
        channels=(ChannelSpec("{name}", label="pager"),),
    )
)
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A shop's plug-in module on the path (provider and channel named alike); the cwd has no .env."""
    name = f"t_pager_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(PLUGIN).replace("{name}", name).replace("{NAME}", name.upper())
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def env(**values: str) -> dict[str, str]:
    return {f"JOURNEYS_{k.upper()}": v for k, v in values.items()}


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[dict[str, str]], Settings]:
    """load_settings with exactly ``variables`` as the JOURNEYS_ environment, for the rest of the test (no .env)."""
    monkeypatch.chdir(tmp_path)

    def loaded(variables: dict[str, str]) -> Settings:
        for name in [n for n in os.environ if n.startswith("JOURNEYS_")]:
            monkeypatch.delenv(name)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)  # until the test ends: a plug-in reads its own when it is built
        return load_settings()

    return loaded


async def test_a_plug_in_named_in_the_settings_is_routed_configured_and_built(
    load: Callable[[dict[str, str]], Settings], plugin: str, tmp_path: Path
) -> None:
    variables = env(plugins=f'["{plugin}"]', routes=f'{{"{plugin}": ["{plugin}"]}}')
    settings = load(variables | {f"JOURNEYS_{plugin.upper()}_TOKEN": "tok", f"JOURNEYS_{plugin.upper()}_RATE": "5"})
    channel = Channel(plugin)
    assert settings.routes == {channel: [plugin]}
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'j.db'}")
    try:
        registry = build_providers(settings, store)
        assert registry.route_of(channel) == plugin
        assert registry.for_channel(channel).token == "tok"  # type: ignore[attr-defined]
        assert send_queues(settings)[plugin][1] == 5.0  # its fleet-wide rate gets a task queue
        with pytest.raises(ConfigError, match=f"^JOURNEYS_{plugin.upper()}_TOKEN is not set"):
            build_providers(load(variables), store)  # its own check, in one line
    finally:
        await store.close()


def test_a_plug_in_s_misspelt_variable_is_named_with_the_right_one(
    load: Callable[[dict[str, str]], Settings], plugin: str
) -> None:
    with pytest.raises(ConfigError, match=f"JOURNEYS_{plugin.upper()}_TOKN is not a setting; did you mean"):
        load(env(plugins=f'["{plugin}"]') | {f"JOURNEYS_{plugin.upper()}_TOKN": "x"})


@pytest.mark.parametrize(
    ("variables", "starts"),
    [
        (env(plugins='["t_nowhere_module"]'), "JOURNEYS_PLUGINS names 't_nowhere_module', which does not import"),
        (env(plugins="t_not_json"), "JOURNEYS_PLUGINS must be a JSON list"),
        (env(plugins='["bad name"]'), "JOURNEYS_PLUGINS must be a JSON list"),
        (env(routes='{"sms": ["t_unknown"]}'), "JOURNEYS_ROUTES"),
        (env(routes='{"t_unknown": ["sandbox"]}'), "JOURNEYS_ROUTES"),
        (env(provider_sends_per_second='{"t_unknown": 5}'), "JOURNEYS_PROVIDER_SENDS_PER_SECOND"),
    ],
)
def test_a_plug_in_mistake_is_one_line_naming_the_variable(
    load: Callable[[dict[str, str]], Settings],
    variables: dict[str, str],
    starts: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError) as refused:
        load(variables)
    assert str(refused.value).startswith(starts) and "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("quiet_start", "22:30", "quiet_start", time(22, 30)),
        ("quiet_end", "07:00", "quiet_end", time(7, 0)),
        ("consent_valid_for", "P365D", "consent_valid_for", timedelta(days=365)),
        ("ad_cap", "5", "ad_cap", 5),
        ("ad_cap_window", "PT12H", "ad_cap_window", timedelta(hours=12)),
        ("channel_ad_cap", "0", "channel_ad_cap", 0),
        ("channel_ad_cap_window", "P2D", "channel_ad_cap_window", timedelta(days=2)),
        ("duplicate_window", "PT0S", "duplicate_window", timedelta(0)),
        ("priority_grace", "PT1M", "priority_grace", timedelta(minutes=1)),
        ("brand_name", "가게", "brand_name", "가게"),
        ("opt_out_line", "수신거부 080-111-1111", "opt_out_line", "수신거부 080-111-1111"),
        ("journey_priority", '["post-purchase"]', "journey_priority", ["post-purchase"]),
    ],
)
def test_every_contact_policy_rule_is_a_setting(
    load: Callable[[dict[str, str]], Settings],
    variable: str,
    value: str,
    field: str,
    expected: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert getattr(load(env(**{variable: value})).policy(), field) == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("consent_valid_for", "PT0S"),
        ("ad_cap", "-1"),
        ("ad_cap_window", "P400D"),
        ("duplicate_window", "-PT1S"),
        ("quiet_start", "25:00"),
        ("brand_name", ""),
        ("opt_out_line", "x" * 81),
    ],
)
def test_an_out_of_bounds_policy_setting_is_one_line(
    load: Callable[[dict[str, str]], Settings],
    variable: str,
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match=f"^JOURNEYS_{variable.upper()}: "):
        load(env(**{variable: value}))


def test_a_zero_duplicate_window_turns_the_rule_off(
    load: Callable[[dict[str, str]], Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = load(env(duplicate_window="PT0S")).policy()
    assert policy.limits("j", Purpose.ADVERTISING, Channel.SMS, "key").duplicate_window is None
    assert load(env()).policy().limits("j", Purpose.ADVERTISING, Channel.SMS, "key").duplicate_window
