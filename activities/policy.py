"""Contact policy applied to every send: consent, Korea's ad rules, quiet hours, caps, duplicates.

:func:`check` decides what a profile allows; frequency caps, journey priority and duplicate
content are counted from the message log and enforced atomically with the claim of a message
(:meth:`activities.store.Store.claim_message`), from the :class:`ContactLimits` built here.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from pydantic import BaseModel, Field

from durable_journeys.activities.contracts import KST
from durable_journeys.activities.customers import CustomerProfile
from durable_journeys.activities.store import Cap, ContactLimits
from durable_journeys.providers import Channel, Purpose

# Channels on which Korean law wants "(광고)" and a free opt-out line on ads (email has its own
# rules and is exempt from the night ban).
AD_MARKED_CHANNELS = frozenset({Channel.SMS, Channel.BRAND_MESSAGE, Channel.RCS, Channel.PUSH, Channel.WEB_PUSH})
NIGHT_EXEMPT_CHANNELS = frozenset({Channel.EMAIL})
# Our own app's inbox is not an "electronic transmission" under the ad rules: no opt-in needed.
CONSENT_EXEMPT_CHANNELS = frozenset({Channel.IN_APP})


class PolicyConfig(BaseModel):
    """Settings of the contact policy."""

    brand_name: str = "듀러블샵"
    opt_out_line: str = "무료수신거부 080-000-0000"
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    consent_valid_for: timedelta = timedelta(days=730)
    # Frequency caps on advertising steps, across every journey (0 turns a cap off).
    ad_cap: int = Field(default=2, ge=0)
    ad_cap_window: timedelta = timedelta(days=7)
    channel_ad_cap: int = Field(default=1, ge=0)
    channel_ad_cap_window: timedelta = timedelta(days=1)
    # The same content (template and variables) to the same customer, on any channel (None: off).
    duplicate_window: timedelta | None = timedelta(days=7)
    # Journeys, highest priority first; an ad of a journey below the first waits priority_grace
    # before it takes a window's last slot. Empty: every journey is equal, nobody waits.
    journey_priority: list[str] = Field(default_factory=list)
    priority_grace: timedelta = timedelta(minutes=10)

    def limits(self, journey: str, purpose: Purpose, channel: Channel, content_key: str | None) -> ContactLimits:
        """What a new message of ``journey`` must respect in the message log."""
        ranked = self.journey_priority
        below_top = bool(ranked) and journey != ranked[0] and self.priority_grace > timedelta(0)
        return ContactLimits(
            advertising=purpose is Purpose.ADVERTISING,
            caps=[
                Cap(limit=self.ad_cap, window=self.ad_cap_window),
                Cap(limit=self.channel_ad_cap, window=self.channel_ad_cap_window, channel=channel.value),
            ],
            content_key=content_key,
            duplicate_window=self.duplicate_window,
            priority_grace=self.priority_grace if below_top else None,
        )


class Decision(BaseModel):
    """What the policy says about one send."""

    allowed: bool
    reason: str | None = None
    not_before: datetime | None = None


def _in_quiet_hours(local: time, cfg: PolicyConfig) -> bool:
    if cfg.quiet_start > cfg.quiet_end:  # spans midnight
        return local >= cfg.quiet_start or local < cfg.quiet_end
    return cfg.quiet_start <= local < cfg.quiet_end


def _quiet_hours_end(at: datetime, cfg: PolicyConfig) -> datetime:
    local = at.astimezone(KST)
    end = local.replace(hour=cfg.quiet_end.hour, minute=cfg.quiet_end.minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end


def check(profile: CustomerProfile, channel: Channel, purpose: Purpose, at: datetime, cfg: PolicyConfig) -> Decision:
    """Decide whether a message may go out now (``at`` is journey time, not wall time)."""
    if purpose is not Purpose.ADVERTISING or channel in CONSENT_EXEMPT_CHANNELS:
        return Decision(allowed=True)
    if profile.unsubscribed:
        return Decision(allowed=False, reason="unsubscribed")
    opted_in = profile.consent_since(channel)  # a biennial notice renews the consent
    if opted_in is None:
        return Decision(allowed=False, reason="no_marketing_consent")
    if at - opted_in > cfg.consent_valid_for:
        return Decision(allowed=False, reason="marketing_consent_expired")
    if (
        channel not in NIGHT_EXEMPT_CHANNELS
        and profile.night_consent_at is None
        and _in_quiet_hours(at.astimezone(KST).time(), cfg)
    ):
        return Decision(allowed=False, reason="quiet_hours", not_before=_quiet_hours_end(at, cfg))
    return Decision(allowed=True)


def mark_advertising(body: str, channel: Channel, purpose: Purpose, cfg: PolicyConfig) -> str:
    """Add the ``(광고)`` prefix with the sender's name and the free opt-out line to an ad."""
    if purpose is not Purpose.ADVERTISING or channel not in AD_MARKED_CHANNELS:
        return body
    return f"(광고){cfg.brand_name}\n{body}\n{cfg.opt_out_line}"
