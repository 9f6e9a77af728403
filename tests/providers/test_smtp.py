"""E-mail against a real local SMTP server (``aiosmtpd``) that receives and parses each message."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from durable_journeys.providers import Channel, ErrorClass, OutboundMessage, Purpose, ReceiptMode, SendStatus
from durable_journeys.providers.smtp.provider import SmtpConfig, SmtpProvider
from durable_journeys.starter.serve import free_port


@dataclass
class Mailbox:
    """An aiosmtpd handler: keeps what it receives; refuses what a test tells it to."""

    received: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)  # address -> SMTP reply
    refuse_data: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse_data:
            return self.refuse_data
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def provider(port: int, **values: Any) -> SmtpProvider:
    config = {
        "host": "127.0.0.1",
        "port": port,
        "sender": "듀러블샵 <shop@durable.example>",
        "security": "none",
        "unsubscribe_url": "https://durable.example/unsubscribe?m={ref}",
        "unsubscribe_mailto": "mailto:unsubscribe@durable.example",
        "timeout": 5,
    } | values
    return SmtpProvider(SmtpConfig(**config))


def mail(purpose: Purpose = Purpose.INFORMATIONAL, **values: Any) -> OutboundMessage:
    return OutboundMessage(
        **{
            "channel": Channel.EMAIL,
            "purpose": purpose,
            "to": "haneul@example.com",
            "subject": "주문하신 상품이 출발했습니다",
            "body": "김하늘님,\n주문(A-1001)이 출발했습니다.\n\n<b>태그</b>는 글자 그대로입니다.",
            "idempotency_key": "post-purchase:A-1001:shipping_started:email",
        }
        | values
    )


async def test_an_informational_mail_has_text_and_html_and_no_unsubscribe_headers(
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox
    result = await provider(port).send(mail())
    assert (result.status, result.receipt) == (SendStatus.ACCEPTED, ReceiptMode.NONE)
    [(sender, recipients, received)] = box.received
    assert (sender, recipients) == ("shop@durable.example", ["haneul@example.com"])
    assert received["Subject"] == "주문하신 상품이 출발했습니다"
    assert received["List-Unsubscribe"] is None and received["List-Unsubscribe-Post"] is None
    plain, page_ = received.get_body(("plain",)), received.get_body(("html",))
    assert plain is not None and page_ is not None
    assert "수신거부" not in plain.get_content() + page_.get_content()  # no opt-out footer on information
    text = received.get_body(("plain",))
    page = received.get_body(("html",))
    assert text is not None and page is not None
    assert "주문(A-1001)이 출발했습니다." in text.get_content()
    assert "&lt;b&gt;태그&lt;/b&gt;" in page.get_content() and "<br>" in page.get_content()
    assert result.provider_message_id == received["Message-ID"]


async def test_an_ad_is_marked_and_offers_one_click_unsubscribe(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    await provider(port).send(mail(Purpose.ADVERTISING, subject="최근 구매 고객 특가"))
    [(_, _, received)] = box.received
    assert received["Subject"] == "(광고) 최근 구매 고객 특가"
    assert received["List-Unsubscribe"] == (
        "<https://durable.example/unsubscribe?m=post-purchase%3AA-1001%3Ashipping_started%3Aemail>, "
        "<mailto:unsubscribe@durable.example>"
    )
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # RFC 8058
    link = "https://durable.example/unsubscribe?m=post-purchase%3AA-1001%3Ashipping_started%3Aemail"
    text, page = received.get_body(("plain",)), received.get_body(("html",))
    assert text is not None and page is not None
    assert text.get_content().rstrip().endswith(f"수신을 원하지 않으시면 수신거부: {link}")  # in the ad itself
    assert f'<a href="{link}">수신을 원하지 않으시면 수신거부</a>' in page.get_content()


async def test_an_ad_already_marked_is_not_marked_twice(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    await provider(port).send(mail(Purpose.ADVERTISING, subject="(광고) 특가"))
    assert box.received[0][2]["Subject"] == "(광고) 특가"


async def test_the_same_message_keeps_its_message_id(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    p = provider(port)
    await p.send(mail())
    await p.send(mail())
    await p.send(mail(idempotency_key="post-purchase:A-1002:shipping_started:email"))
    ids = [m["Message-ID"] for _, _, m in box.received]
    assert ids[0] == ids[1] != ids[2] and ids[0].endswith("@durable.example>")


@pytest.mark.parametrize(
    ("refusal", "expected"),
    [
        ({"refuse_rcpt": {"haneul@example.com": "550 5.1.1 no such user"}}, ErrorClass.RECIPIENT_DEAD),
        ({"refuse_rcpt": {"haneul@example.com": "452 4.2.2 mailbox full"}}, ErrorClass.RETRY),
        ({"refuse_data": "554 5.7.1 message refused as spam"}, ErrorClass.REQUEST),
        ({"refuse_data": "451 4.3.0 try again later"}, ErrorClass.RETRY),
    ],
    ids=["unknown-user", "mailbox-full", "content-refused", "data-later"],
)
async def test_refusals_are_classed_by_reply_code(
    mailbox: tuple[Mailbox, int], refusal: dict[str, Any], expected: ErrorClass
) -> None:
    box, port = mailbox
    for name, value in refusal.items():
        setattr(box, name, value)
    result = await provider(port).send(mail())
    assert (result.status, result.error_class) == (SendStatus.REJECTED, expected)
    assert box.received == []


async def test_no_server_is_retried_and_an_ad_without_unsubscribe_url_is_a_config_error() -> None:
    closed = free_port()
    result = await provider(closed).send(mail())
    assert (result.status, result.error_class) == (SendStatus.REJECTED, ErrorClass.RETRY)
    no_link = await provider(closed, unsubscribe_url="").send(mail(Purpose.ADVERTISING))
    assert (no_link.error_class, no_link.error_code) == (ErrorClass.CONFIG, "NOT_CONFIGURED")
    assert "JOURNEYS_SMTP_UNSUBSCRIBE_URL" in (no_link.error_message or "")


@pytest.mark.parametrize(
    "values",
    [{"subject": "주문\r\nBcc: everyone@example.com"}, {"to": "haneul@example.com\nBcc: x@example.com"}],
    ids=["subject", "recipient"],
)
async def test_a_header_injection_is_refused_not_sent_and_never_raises(
    mailbox: tuple[Mailbox, int], values: dict[str, Any]
) -> None:
    box, port = mailbox
    result = await provider(port).send(mail(**values))
    assert (result.status, result.error_class) == (SendStatus.REJECTED, ErrorClass.REQUEST)
    assert box.received == []
