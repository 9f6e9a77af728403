"""The consent-notice journey's activities: which ad consents are in force, and a notice that reached the customer."""

from __future__ import annotations

import structlog
from temporalio import activity

from durable_journeys.activities.contracts import (
    CONSENT_CLOCKS,
    RECORD_CONSENT_NOTICE,
    ConsentClock,
    ConsentClocksRequest,
    ConsentNotice,
)
from durable_journeys.activities.store import Store

log = structlog.get_logger("activities.send")


class ConsentActivities:
    """Activities the consent-notice journey reads and records consents with."""

    _store: Store

    @activity.defn(name=CONSENT_CLOCKS)
    async def consent_clocks(self, req: ConsentClocksRequest) -> list[ConsentClock]:
        """The customer's ad consents still in force, oldest clock first (none for an unsubscribed customer)."""
        profile = await self._store.get_customer(req.customer_id)
        if profile is None or profile.unsubscribed:
            return []
        clocks = []
        for channel, given in profile.marketing_consent.items():
            since = profile.consent_since(channel) or given
            if req.at - since <= req.valid_for:
                clocks.append(ConsentClock(channel=channel, given_at=given, since=since))
        return sorted(clocks, key=lambda c: (c.since, c.channel.value))

    @activity.defn(name=RECORD_CONSENT_NOTICE)
    async def record_consent_notice(self, notice: ConsentNotice) -> None:
        """Record that the consent notice reached the customer: that consent's two years start again."""
        await self._store.record_consent_notice(notice.customer_id, notice.channel.value, notice.at)
        log.info("consent.notice_recorded", customer_id=notice.customer_id, channel=notice.channel.value)
