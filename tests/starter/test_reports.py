"""Polled delivery reports: a batch is acknowledged only once its journeys were told."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from bizgo.testing import FakeTransport

from durable_journeys.activities import DeliveryReceipt
from durable_journeys.providers.bizgo.provider import BizgoConfig, BizgoProvider
from durable_journeys.starter.receipts import SIGNALLED, UNAVAILABLE, ReceiptIntake, poll_reports
from tests.starter.test_cli import journeys

REPORT = {
    "msgKey": "MK-1",
    "serviceType": "SMS",
    "reportCode": "10000",
    "ref": "post-purchase:A-1:payment_complete:sms",
}


class Intake(ReceiptIntake):
    """Answers every receipt with ``answer`` and remembers them; no store, no Temporal."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.taken: list[DeliveryReceipt] = []

    async def take(self, provider_name: str, receipts: Sequence[DeliveryReceipt]) -> list[str]:
        self.taken.extend(receipts)
        return [self.answer] * len(receipts)


@pytest.mark.parametrize(("answer", "acknowledged"), [(SIGNALLED, True), (UNAVAILABLE, False)])
async def test_a_batch_is_acknowledged_only_when_its_journeys_were_told(answer: str, acknowledged: bool) -> None:
    fake = FakeTransport()
    fake.on("getReportPolling").data({"reportId": "R-1", "report": [REPORT]}).data({"reportId": "", "report": []})
    intake = Intake(answer)
    provider: Any = BizgoProvider(fake.async_client(), BizgoConfig())
    await poll_reports(intake, provider, once=True)
    assert [r.provider_message_id for r in intake.taken] == ["MK-1"]
    assert bool(fake.requests_for("ackReportPolling")) is acknowledged


def test_reports_without_polling_configured_is_one_line() -> None:
    done = journeys("reports")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "journeys: JOURNEYS_BIZGO_RECEIPTS is not poll: Bizgo posts its reports to journeys webhooks"
    ]
