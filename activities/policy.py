"""Contact policy applied to every send: consent, Korea's ad rules, quiet hours, caps, duplicates.

:func:`check` decides what a profile allows; frequency caps, journey priority and duplicate
content are counted from the message log and enforced atomically with the claim of a message
(:meth:`activities.store.Store.claim_message`), from the :class:`ContactLimits` built here.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from durable_journeys.activities.contracts import KST
from durable_journeys.activities.customers import CustomerProfile
from durable_journeys.activities.experiments import in_holdout
from durable_journeys.activities.store import Cap, ContactLimits
from durable_journeys.providers import Channel, Purpose
from durable_journeys.providers.channels import AdRule, channel_spec


class PolicyConfig(BaseModel):
    """The contact policy: its one definition, every rule settable.

    The worker's settings inherit these fields, so each is also an environment variable
    (``JOURNEYS_AD_CAP``, ``JOURNEYS_QUIET_START``, ``JOURNEYS_CONSENT_VALID_FOR`` ...); windows
    are ISO 8601 durations such as ``P7D`` or ``PT12H``. Which channels a rule applies to is a
    trait of each channel (``providers.channels``), not a list here.
    """

    brand_name: str = Field(default="듀러블샵", min_length=1, max_length=40, description="named after (광고)")
    opt_out_line: str = Field(
        default="무료수신거부 080-000-0000", min_length=1, max_length=80, description="the free opt-out line of an ad"
    )
    # Ads wait out the night (KST) unless the customer consented to night ads; equal: no quiet hours.
    quiet_start: time = Field(default=time(21, 0), description="quiet hours start (KST)")
    quiet_end: time = Field(default=time(8, 0), description="quiet hours end (KST)")
    # An ad consent holds this long unless renewed (the biennial notice renews it).
    consent_valid_for: timedelta = Field(default=timedelta(days=730), gt=timedelta(0), le=timedelta(days=3660))
    # Frequency caps on advertising steps, across every journey (0 turns a cap off).
    ad_cap: int = Field(default=2, ge=0, le=1000, description="ads per customer per ad_cap_window, all channels")
    ad_cap_window: timedelta = Field(default=timedelta(days=7), gt=timedelta(0), le=timedelta(days=366))
    channel_ad_cap: int = Field(default=1, ge=0, le=1000, description="ads per customer per channel per window")
    channel_ad_cap_window: timedelta = Field(default=timedelta(days=1), gt=timedelta(0), le=timedelta(days=366))
    # The same content (template and variables) to the same customer, on any channel.
    duplicate_window: timedelta = Field(
        default=timedelta(days=7), ge=timedelta(0), le=timedelta(days=366), description="0: duplicates allowed"
    )
    # Journeys, highest priority first; an ad of a journey below the first waits priority_grace
    # before it takes a window's last slot. Empty: every journey is equal, nobody waits.
    journey_priority: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=50)
    priority_grace: timedelta = Field(default=timedelta(minutes=10), ge=timedelta(0), le=timedelta(days=1))
    # The global holdout: this share of customers (chosen by a hash of their id, the same in every
    # process) and these customers get no ad from any journey; informational messages still go.
    holdout_percent: float = Field(default=0.0, ge=0, le=50, description="percent of customers held out of every ad")
    holdout_customers: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=1000, description="customers always held out (QA accounts, tests)"
    )

    @field_validator("duplicate_window", mode="before")
    @classmethod
    def _none_is_off(cls, value: object) -> object:
        return timedelta(0) if value is None else value

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
            duplicate_window=self.duplicate_window or None,
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
    spec = channel_spec(channel)
    if purpose is not Purpose.ADVERTISING:
        return Decision(allowed=True)
    if not spec.consent:
        return _holdout(profile, cfg)
    if profile.unsubscribed:
        return Decision(allowed=False, reason="unsubscribed")
    opted_in = profile.consent_since(channel)  # a biennial notice renews the consent
    if opted_in is None:
        return Decision(allowed=False, reason="no_marketing_consent")
    if at - opted_in > cfg.consent_valid_for:
        return Decision(allowed=False, reason="marketing_consent_expired")
    if spec.quiet_hours and profile.night_consent_at is None and _in_quiet_hours(at.astimezone(KST).time(), cfg):
        return Decision(allowed=False, reason="quiet_hours", not_before=_quiet_hours_end(at, cfg))
    return _holdout(profile, cfg)


def _holdout(profile: CustomerProfile, cfg: PolicyConfig) -> Decision:
    """An ad the customer may have is held back if they are in the global holdout.

    Checked last, so the holdout counts customers who would have got the ad: the report compares
    them with those who did.
    """
    if in_holdout(profile.customer_id, cfg.holdout_percent, cfg.holdout_customers):
        return Decision(allowed=False, reason="holdout")
    return Decision(allowed=True)


def mark_advertising(body: str, channel: Channel, purpose: Purpose, cfg: PolicyConfig) -> str:
    """Add the ``(광고)`` prefix with the sender's name and the free opt-out line to an ad."""
    if purpose is not Purpose.ADVERTISING or channel_spec(channel).advertising is not AdRule.MARKED:
        return body
    return f"(광고){cfg.brand_name}\n{body}\n{cfg.opt_out_line}"
