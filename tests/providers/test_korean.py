"""SMS vs LMS by cp949 byte length, and templates checked before any send."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_journeys.activities import Channel, Template, TemplateRegistry
from durable_journeys.providers import SmsKind, TemplateError, cp949_length, sms_kind


def test_cp949_lengths_decide_sms_or_lms() -> None:
    assert cp949_length("가") == 2 and cp949_length("a") == 1
    assert sms_kind("가" * 45) is SmsKind.SMS  # 90 bytes
    assert sms_kind("가" * 46) is SmsKind.LMS  # 91+ bytes
    assert sms_kind("short", subject="제목") is SmsKind.SMS  # a subject alone never makes an LMS
    with pytest.raises(TemplateError, match="over the LMS limit"):
        sms_kind("가" * 1001)
    with pytest.raises(TemplateError, match="subject"):
        sms_kind("본문", subject="가" * 21)


cp949_text = st.text(
    alphabet=st.sampled_from("가나다라마바사아자차카타파하 abcdefgXYZ0123456789.,!?()[]-:~원님"), max_size=1100
)


@given(body=cp949_text, subject=st.one_of(st.none(), st.text(alphabet="주문안내 abc", max_size=20)))
def test_the_body_alone_decides_sms_or_lms(body: str, subject: str | None) -> None:
    size = cp949_length(body)
    if size > 2000:
        with pytest.raises(TemplateError, match="over the LMS limit"):
            sms_kind(body, subject)
        return
    assert sms_kind(body, subject) is (SmsKind.SMS if size <= 90 else SmsKind.LMS)


def test_text_that_cp949_cannot_carry_is_refused() -> None:
    with pytest.raises(TemplateError, match="cp949"):
        cp949_length("할인 🎉")
    with pytest.raises(TemplateError, match="cp949"):
        TemplateRegistry([Template(code="x", texts={Channel.SMS: "할인 🎉"})])
    # email may carry it
    TemplateRegistry([Template(code="x", texts={Channel.EMAIL: "할인 🎉"})])


def test_validate_names_missing_variables_and_channels() -> None:
    reg = TemplateRegistry([Template(code="t", texts={Channel.SMS: "#{a} #{b}"})])
    with pytest.raises(TemplateError, match="needs variable\\(s\\) b"):
        reg.validate("t", [Channel.SMS], {"a": "1"})
    with pytest.raises(TemplateError, match="no text for alimtalk"):
        reg.validate("t", [Channel.ALIMTALK], {"a": "1", "b": "2"})
    with pytest.raises(TemplateError, match="unknown template"):
        reg.validate("nope", [Channel.SMS], {})
    with pytest.raises(TemplateError, match="cp949"):
        reg.validate("t", [Channel.SMS], {"a": "🎉", "b": "2"})
    reg.validate("t", [Channel.SMS], {"a": "1", "b": "2"})
