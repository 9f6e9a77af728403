"""The Bizgo provider against the SDK's own test tools (``bizgo.testing``): no network, no hand-made mock.

``FakeTransport`` records each request the SDK would make and answers with stubbed envelopes;
``sign_webhook`` builds report webhooks signed the way Bizgo signs them.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from bizgo._error_codes import SERVICE_CODES
from bizgo.testing import FakeTransport, sign_webhook

from durable_journeys.providers import (
    Channel,
    DeliveryReceipt,
    ErrorClass,
    OutboundMessage,
    ProviderUnavailable,
    ReceiptMode,
    ReceiptStatus,
    SendStatus,
    SignatureError,
    SmsKind,
    WebhookError,
)
from durable_journeys.providers.bizgo.provider import (
    ERROR_CLASSES,
    GATEWAY_CLASSES,
    BizgoConfig,
    BizgoProvider,
    bizgo_key,
    group_key,
)

SECRET = "bizgo-webhook-secret-for-tests-0123456789"
CONFIG = BizgoConfig(sender_key="SENDER-1", caller_number="0212345678", rcs_brand_key="BRAND-1", rcs_format_id="F-1")
KEY = "post-purchase:A-1001:payment_complete:alimtalk"


def provider(fake: FakeTransport, config: BizgoConfig = CONFIG) -> BizgoProvider:
    return BizgoProvider(fake.async_client(max_retries=0), config, webhook_secret=SECRET)


def message(channel: Channel = Channel.ALIMTALK, **values: Any) -> OutboundMessage:
    defaults: dict[str, Any] = {
        "to": "010-1234-5678",
        "body": "김하늘님, 주문(A-1001)이 결제되었습니다.",
        "idempotency_key": KEY.replace("alimtalk", channel.value),
        "template_code": "ORDER_PAID" if channel is Channel.ALIMTALK else None,
    }
    return OutboundMessage(channel=channel, **(defaults | values))


async def test_an_alimtalk_goes_out_as_one_omni_send_keyed_by_our_idempotency_key() -> None:
    fake = FakeTransport()
    result = await provider(fake).send(message())
    assert (result.status, result.receipt) == (SendStatus.ACCEPTED, ReceiptMode.WEBHOOK)
    assert result.provider_message_id == "FAKE-MSGKEY-000001"
    sent = fake.last_request
    assert sent.operation_id == "sendOmni"
    assert sent.json == {
        "destinations": [{"to": "01012345678"}],
        "messageFlow": [
            {
                "alimtalk": {
                    "senderKey": "SENDER-1",
                    "templateCode": "ORDER_PAID",
                    "msgType": "AT",
                    "text": "김하늘님, 주문(A-1001)이 결제되었습니다.",
                }
            }
        ],
        "idempotencyKey": KEY,
        "idempotencyTtl": 86400,
        "ref": KEY,
        "groupKey": "post-purchase.payment_complete",
    }


@pytest.mark.parametrize(
    ("channel", "values", "flow"),
    [
        (Channel.SMS, {"sms_kind": SmsKind.SMS}, {"sms": {"from": "0212345678", "text": "짧은 안내"}}),
        (
            Channel.SMS,
            {"sms_kind": SmsKind.LMS, "subject": "주문 안내"},
            {"mms": {"from": "0212345678", "title": "주문 안내", "text": "짧은 안내"}},
        ),
        (
            Channel.RCS,
            {"subject": "주문 안내"},
            {
                "rcs": {
                    "from": "0212345678",
                    "formatId": "F-1",
                    "brandKey": "BRAND-1",
                    "body": {"title": "주문 안내", "description": "짧은 안내"},
                }
            },
        ),
        (
            Channel.BRAND_MESSAGE,
            {},
            {"brandmessage": {"senderKey": "SENDER-1", "sendType": "free", "msgType": "FT", "text": "짧은 안내"}},
        ),
    ],
    ids=["sms", "lms", "rcs", "brand-message"],
)
async def test_each_channel_becomes_the_sdk_message_model(
    channel: Channel, values: dict[str, Any], flow: dict[str, Any]
) -> None:
    fake = FakeTransport()
    result = await provider(fake).send(message(channel, body="짧은 안내", **values))
    assert result.status is SendStatus.ACCEPTED
    assert fake.last_request.json["messageFlow"] == [flow]


async def test_a_registered_brand_message_template_is_filled_by_bizgo() -> None:
    fake = FakeTransport()
    msg = message(Channel.BRAND_MESSAGE, template_code="BM-SALE", variables={"customer_name": "김하늘"})
    assert (await provider(fake).send(msg)).status is SendStatus.ACCEPTED
    sent = fake.last_request.json
    assert sent["destinations"] == [{"to": "01012345678", "replaceWords": {"customer_name": "김하늘"}}]
    assert sent["messageFlow"] == [
        {"brandmessage": {"senderKey": "SENDER-1", "sendType": "template", "templateCode": "BM-SALE", "targeting": "I"}}
    ]


async def test_an_sms_over_90_bytes_is_refused_by_the_sdk_before_anything_is_sent() -> None:
    fake = FakeTransport()
    result = await provider(fake).send(message(Channel.SMS, body="가" * 46, sms_kind=SmsKind.SMS))  # 92 bytes
    assert (result.status, result.error_class, result.error_code) == (
        SendStatus.REJECTED,
        ErrorClass.REQUEST,
        "INVALID_MESSAGE",
    )
    assert fake.requests == []


@pytest.mark.parametrize(
    ("config", "channel", "values", "setting"),
    [
        (BizgoConfig(caller_number="021"), Channel.ALIMTALK, {}, "JOURNEYS_BIZGO_SENDER_KEY"),
        (CONFIG, Channel.ALIMTALK, {"template_code": None}, "template code"),
        (BizgoConfig(sender_key="S"), Channel.SMS, {}, "JOURNEYS_BIZGO_CALLER_NUMBER"),
        (BizgoConfig(caller_number="021"), Channel.RCS, {}, "JOURNEYS_BIZGO_RCS_BRAND_KEY"),
        (CONFIG, Channel.EMAIL, {"to": "a@example.com"}, "Bizgo route for email"),
    ],
)
async def test_a_missing_setting_is_a_config_error_naming_it_and_nothing_is_sent(
    config: BizgoConfig, channel: Channel, values: dict[str, Any], setting: str
) -> None:
    fake = FakeTransport()
    result = await provider(fake, config).send(message(channel, **values))
    assert (result.status, result.error_class) == (SendStatus.REJECTED, ErrorClass.CONFIG)
    assert setting in (result.error_message or "")
    assert fake.requests == []


# -- Bizgo's answers, row by row of the table ------------------------------------------------------


@pytest.mark.parametrize(("code", "expected"), sorted(ERROR_CLASSES.items()))
async def test_every_per_recipient_code_of_the_table(code: str, expected: ErrorClass) -> None:
    fake = FakeTransport()
    fake.on("sendOmni").send_result(code)
    result = await provider(fake).send(message())
    assert result.error_class is expected
    assert result.error_code == code
    assert result.status is (SendStatus.UNKNOWN if expected is ErrorClass.UNKNOWN else SendStatus.REJECTED)


@pytest.mark.parametrize(("code", "expected"), sorted(ERROR_CLASSES.items()))
async def test_every_request_level_code_of_the_table(code: str, expected: ErrorClass) -> None:
    fake = FakeTransport()
    status = SERVICE_CODES[code][0]
    fake.on("sendOmni").fail("service", status, code, retry_after=0)
    result = await provider(fake).send(message())
    assert result.error_class is expected, (code, result)
    assert result.status is (SendStatus.UNKNOWN if expected is ErrorClass.UNKNOWN else SendStatus.REJECTED)


@pytest.mark.parametrize(("code", "expected"), sorted(GATEWAY_CLASSES.items()))
async def test_every_gateway_code_of_the_table(code: str, expected: ErrorClass) -> None:
    fake = FakeTransport()
    fake.on("sendOmni").fail("gateway", int(code[1:]), code)
    result = await provider(fake).send(message())
    assert (result.status, result.error_class, result.error_code) == (SendStatus.REJECTED, expected, code)


def test_the_table_only_names_codes_the_sdk_knows() -> None:
    assert set(ERROR_CLASSES) <= set(SERVICE_CODES)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(400, ErrorClass.REQUEST), (401, ErrorClass.CONFIG), (403, ErrorClass.CONFIG), (502, ErrorClass.UNKNOWN)],
)
async def test_a_code_not_in_the_table_goes_by_its_http_status(status: int, expected: ErrorClass) -> None:
    fake = FakeTransport()
    fake.on("sendOmni").fail("service", status, "A777", retry_after=0)
    assert (await provider(fake).send(message())).error_class is expected


async def test_a_rate_limit_is_retried_after_what_bizgo_said() -> None:
    fake = FakeTransport()
    fake.on("sendOmni").fail("service", 429, "A020", retry_after=7)
    result = await provider(fake).send(message())
    assert (result.error_class, result.retry_after) == (ErrorClass.RETRY, timedelta(seconds=7))


async def test_a_key_bizgo_took_before_is_accepted_and_not_sent_again() -> None:
    fake = FakeTransport()
    fake.on("sendOmni").duplicates()
    result = await provider(fake).send(message())
    assert (result.status, result.provider_message_id) == (SendStatus.ACCEPTED, "FAKE-MSGKEY-000001")
    fake.on("sendOmni").fail("service", 200, "A301")  # the whole request, answered as a duplicate
    assert (await provider(fake).send(message())).status is SendStatus.ACCEPTED


async def test_a_refused_connection_is_known_not_sent_and_a_timeout_is_unknown() -> None:
    fake = FakeTransport()
    fake.on("sendOmni").network_error()
    refused = await provider(fake).send(message())
    assert (refused.status, refused.error_class) == (SendStatus.REJECTED, ErrorClass.RETRY)
    fake.reset()
    fake.on("sendOmni").timeout()
    timed_out = await provider(fake).send(message())
    assert (timed_out.status, timed_out.error_class) == (SendStatus.UNKNOWN, ErrorClass.UNKNOWN)


async def test_an_unreadable_answer_is_unknown() -> None:
    fake = FakeTransport()
    fake.on("sendOmni").respond(200, {"not": "an envelope"})
    result = await provider(fake).send(message())
    assert (result.status, result.error_code) == (SendStatus.UNKNOWN, "INVALID_RESPONSE")


# -- reconciling an unknown outcome -------------------------------------------------------------------


async def test_lookup_finds_the_send_by_its_ref_in_the_step_s_history() -> None:
    fake = FakeTransport()
    fake.on("getMessageHistory").data(
        {
            "messages": [
                {"msgKey": "OTHER", "ref": "post-purchase:A-9:payment_complete:alimtalk"},
                {"msgKey": "MK-7", "ref": KEY, "reportCode": "10000"},
            ],
            "hasNext": False,
        }
    )
    found = await provider(fake).lookup(KEY)
    assert found is not None and (found.status, found.provider_message_id) == (SendStatus.ACCEPTED, "MK-7")
    assert fake.last_request.query["groupKey"] == "post-purchase.payment_complete"


async def test_lookup_of_a_key_bizgo_never_took_is_none() -> None:
    fake = FakeTransport()
    fake.on("getMessageHistory").data({"messages": [], "hasNext": False})
    assert await provider(fake).lookup(KEY) is None


async def test_lookup_that_cannot_reach_bizgo_says_so() -> None:
    fake = FakeTransport()
    fake.on("getMessageHistory").network_error()
    with pytest.raises(ProviderUnavailable):
        await provider(fake).lookup(KEY)


def test_keys_fit_bizgo_and_group_by_journey_step() -> None:
    long_key = "cart:" + "c" * 64 + "@" + "r" * 200 + ":cart_reminder:push"
    assert len(bizgo_key(long_key)) <= 200 and bizgo_key(KEY) == KEY
    assert group_key(KEY) == "post-purchase.payment_complete"
    assert group_key("cart:c-1@run-9:cart_coupon:alimtalk") == "cart.cart_coupon"


# -- delivery reports ----------------------------------------------------------------------------------


def report(code: str = "10000", **values: Any) -> dict[str, Any]:
    return {
        "msgKey": "MK-1",
        "serviceType": "ALIMTALK",
        "msgType": "AT",
        "reportType": "RS",
        "reportCode": code,
        "reportTime": "2026-12-01T10:00:05+09:00",
        "ref": KEY,
    } | values


@pytest.mark.parametrize(("code", "status"), [("10000", ReceiptStatus.DELIVERED), ("30116", ReceiptStatus.FAILED)])
def test_a_signed_report_becomes_a_receipt_routed_by_ref_and_msg_key(code: str, status: ReceiptStatus) -> None:
    p = provider(FakeTransport())
    headers, body = sign_webhook(SECRET, report(code))
    [receipt] = p.parse_webhook(headers, body)
    assert isinstance(receipt, DeliveryReceipt)
    assert (receipt.provider, receipt.idempotency_key, receipt.provider_message_id) == ("bizgo", KEY, "MK-1")
    assert (receipt.status, receipt.channel) == (status, Channel.ALIMTALK)
    assert receipt.error_code == (None if status is ReceiptStatus.DELIVERED else code)
    assert p.acknowledge([receipt]) == {"msgKey": "MK-1"}


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_both_signature_encodings_are_accepted(encoding: Any) -> None:
    headers, body = sign_webhook(SECRET, report(), encoding=encoding)
    assert len(provider(FakeTransport()).parse_webhook(headers, body)) == 1


@pytest.mark.parametrize(
    "forgery",
    ["another secret", "stale", "no signature", "no secret configured"],
)
def test_a_forged_or_stale_report_is_refused(forgery: str) -> None:
    p = provider(FakeTransport())
    secret, stamp = SECRET, None
    if forgery == "another secret":
        secret = "not-the-secret-" + "x" * 30
    if forgery == "stale":
        stamp = int((time.time() - 3600) * 1000)
    headers, body = sign_webhook(secret, report(), timestamp=stamp)
    if forgery == "no signature":
        headers = {k: v for k, v in headers.items() if k != "X-IB-Signature"}
    if forgery == "no secret configured":
        p = BizgoProvider(FakeTransport().async_client(), CONFIG, webhook_secret="")
    with pytest.raises(SignatureError):
        p.parse_webhook(headers, body)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"msgKey": 5}', b'{"msgKey": "MK"}'])
def test_a_signed_body_that_is_no_report_is_a_webhook_error(body: bytes) -> None:
    headers, _ = sign_webhook(SECRET, {})
    with pytest.raises(WebhookError):
        provider(FakeTransport()).parse_webhook(headers, body)


async def test_polled_reports_are_handled_then_acknowledged() -> None:
    fake = FakeTransport()
    fake.on("getReportPolling").data({"reportId": "R-1", "report": [report(), report("30116", msgKey="MK-2")]}).data(
        {"reportId": "", "report": []}
    )
    seen: list[list[Any]] = []

    async def handle(receipts: list[Any]) -> None:
        seen.append(receipts)

    assert await provider(fake).poll_receipts(handle) == 2
    assert [[r.status for r in batch] for batch in seen] == [[ReceiptStatus.DELIVERED, ReceiptStatus.FAILED]]
    assert [r.operation_id for r in fake.requests] == ["getReportPolling", "ackReportPolling", "getReportPolling"]


async def test_alimtalk_in_template_mode_lets_kakao_fill_its_approved_template() -> None:
    fake = FakeTransport()
    config = BizgoConfig(sender_key="SENDER-1", alimtalk_send_type="template")
    msg = message(variables={"customer_name": "김하늘", "order_id": "A-1001"})
    assert (await provider(fake, config).send(msg)).status is SendStatus.ACCEPTED
    sent = fake.last_request.json
    assert sent["messageFlow"] == [
        {"alimtalk": {"senderKey": "SENDER-1", "templateCode": "ORDER_PAID", "sendType": "template"}}
    ]
    assert sent["destinations"] == [
        {"to": "01012345678", "replaceWords": {"customer_name": "김하늘", "order_id": "A-1001"}}
    ]


async def test_images_make_an_mms_and_a_template_s_rcs_format_wins() -> None:
    fake = FakeTransport()
    p = provider(fake)
    await p.send(message(Channel.SMS, body="신상품 안내", sms_kind=SmsKind.SMS, image_keys=["FILE-1", "FILE-2"]))
    assert fake.last_request.json["messageFlow"] == [
        {"mms": {"from": "0212345678", "text": "신상품 안내", "fileKey": ["FILE-1", "FILE-2"]}}
    ]
    await p.send(message(Channel.RCS, body="신상품 안내", template_code="RCS-FORMAT-9"))
    assert fake.last_request.json["messageFlow"][0]["rcs"]["formatId"] == "RCS-FORMAT-9"
