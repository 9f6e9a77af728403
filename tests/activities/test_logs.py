"""No phone, e-mail, name or token in logs, exceptions or history (docs/architecture.md §8a)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from durable_journeys.activities import STORE_UNAVAILABLE, Channel
from durable_journeys.activities.logs import configure_logging, redact_pii
from durable_journeys.activities.masking import mask
from durable_journeys.starter.stack import Stack
from tests.activities.test_send import request
from tests.factories import customer

NAME, PHONE, EMAIL, TOKEN = "김하늘", "010-9876-5432", "Haneul.Kim+shop@Example.co.kr", "fcm" * 10 + ":" + "A" * 140
PII = (NAME, PHONE, "01098765432", EMAIL, TOKEN)

phones = st.builds(
    lambda prefix, sep, mid, last: f"{prefix}{sep}{mid}{sep}{last}",
    st.sampled_from(["010", "011", "016", "02", "031", "051", "064", "070", "+82 10", "+82-2", "(02)"]),
    st.sampled_from(["-", " ", ".", ""]),
    st.integers(100, 9999).map(str),
    st.integers(1000, 9999).map(str),
)
emails = st.builds(
    lambda local, plus, domain, tld: f"{local}{plus}@{domain}.{tld}",
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._]{0,15}", fullmatch=True),
    st.sampled_from(["", "+tag", "+쇼핑"]),
    st.from_regex(r"[A-Za-z0-9\-]{1,12}", fullmatch=True),
    st.sampled_from(["com", "co.kr", "KR", "한국"]),
)


@given(phone=phones, email=emails, filler=st.text(alphabet="가나다 abc,:/", max_size=20))
def test_every_phone_and_email_form_is_masked_however_deeply_nested(phone: str, email: str, filler: str) -> None:
    line = {
        "event": f"{filler}{phone} {email}{filler}",
        "ctx": {"a": [(f"x {phone}",), {"b": email}]},
        "error": ValueError(f"bad {email} / {phone}"),
    }
    rendered = json.dumps(redact_pii(None, "info", line), ensure_ascii=False, default=str)
    assert phone not in rendered and email not in rendered


FULL_WIDTH = str.maketrans("0123456789-+() .", "０１２３４５６７８９－＋（）\u3000．")


@given(phone=phones, email=emails, filler=st.text(alphabet="가나다 abc,:", max_size=20))
def test_full_width_and_percent_encoded_forms_are_masked_too(phone: str, email: str, filler: str) -> None:
    wide = phone.translate(FULL_WIDTH)
    encoded = email.replace("@", "%40").replace("+", "%2B")
    url = f"https://shop.example/track?who={encoded}&n={filler}"
    for text in (f"{filler}{wide}{filler}", url, f"call {wide} or mail {encoded}"):
        masked = mask(text)
        assert wide not in masked and encoded not in masked, masked
        assert mask(masked) == masked  # masking is stable: a masked text passes the Updates' check


@given(text=st.text(alphabet="가나다라 abcｘｙｚ%０１２!?", max_size=40))
def test_text_without_contact_data_is_left_as_it_is(text: str) -> None:
    masked = mask(text)
    assert masked == text or "<phone>" in masked or "<email>" in masked


@pytest.mark.parametrize(
    "key", ["to", "phone", "email", "name", "customer_name", "push_tokens", "body", "Authorization"]
)
def test_contact_fields_are_dropped_whatever_they_hold(key: str) -> None:
    assert redact_pii(None, "info", {"event": "x", key: "anything at all"})[key] == "<redacted>"
    assert redact_pii(None, "info", {"event": "x", "nested": {key: NAME}})["nested"][key] == "<redacted>"


def test_push_tokens_are_masked() -> None:
    assert TOKEN not in mask(f"token {TOKEN} unregistered")
    assert "https://fcm.googleapis.com" not in mask("endpoint https://fcm.googleapis.com/fcm/send/abc:def gone")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://journeys:s3cr%40t-pass@db.internal:5432/journeys",
        "postgresql://u:p@127.0.0.1/test",
        "redis://:hunter2-long@cache:6379/0",
    ],
)
def test_passwords_in_urls_are_masked(url: str) -> None:
    credentials = url.split("://", 1)[1].split("@", 1)[0]
    masked = mask(f"could not connect to {url}: connection refused")
    assert f"{credentials}@" not in masked and ":<password>@" in masked


def test_ids_times_and_amounts_survive() -> None:
    line = "post-purchase:o-12345678:payment_complete:alimtalk at 2026-11-26T02:00:00 for 39,000 KRW"
    assert mask(line) == line


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()


async def test_a_failing_send_logs_no_personal_data(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    """The database fails with PII in its parameters and its message; the SDK, uvicorn and the CLI log
    exceptions through stdlib logging. Neither the JSON log nor the activity's error carries PII."""
    configure_logging(json=True, level="INFO")
    c = customer(PHONE, name=NAME, email=EMAIL, push_tokens=[TOKEN])
    await stack.store.upsert_customer(c)

    async def failing_claim(**fields: Any) -> Any:
        raise IntegrityError(
            "INSERT INTO message_log ...",
            {"name": NAME, "to": PHONE},
            Exception(f"duplicate key: Key (email)=({EMAIL}) already exists"),
        )

    monkeypatch.setattr(stack.store, "claim_message", failing_claim)
    with capture_logs() as captured, pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(stack.activities.send_message, request(c.customer_id, Channel.SMS))
    assert err.value.type == STORE_UNAVAILABLE and err.value.__cause__ is None
    structlog.get_logger("x").warning("message.failed", error=str(err.value), profile=c.model_dump(mode="json"))
    for name in ("temporalio.activity", "uvicorn.error", "journeys"):
        try:
            raise RuntimeError(f"send to {PHONE} for {EMAIL} failed ({TOKEN})")
        except RuntimeError:
            logging.getLogger(name).exception("Completing activity as failed")
    output = capsys.readouterr().err
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert records and any("exception" in r and "RuntimeError" in r["exception"] for r in records)
    text = (
        json.dumps(records, ensure_ascii=False) + str(err.value) + json.dumps(captured, ensure_ascii=False, default=str)
    )
    for value in PII:
        assert value not in text, value
