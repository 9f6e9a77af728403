"""Templates as files: loading, the checks with their messages, HTML autoescaping, the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_journeys.activities import Channel, Purpose, TemplateError
from durable_journeys.activities.policy import PolicyConfig, mark_advertising
from durable_journeys.activities.templates import PACKAGED_DIR, check_templates, load_templates
from durable_journeys.providers import ConfigError
from durable_journeys.starter.assembly import journey_templates, required_templates
from durable_journeys.starter.settings import Settings
from durable_journeys.starter.template_tools import check_report, render_preview

POLICY = PolicyConfig()


def decorate(body: str, channel: Channel, purpose: Purpose) -> str:
    return mark_advertising(body, channel, purpose, POLICY)


def write(tmp_path: Path, text: str, name: str = "shop.toml") -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def problems(tmp_path: Path, text: str) -> list[str]:
    return check_templates(load_templates(write(tmp_path, text)), decorate)


def test_the_packaged_files_are_clean_and_cover_every_journey() -> None:
    registry = load_templates(PACKAGED_DIR)
    assert check_templates(registry, decorate, required=required_templates()) == []
    assert (
        {t.source for t in registry}
        == {p.name for p in PACKAGED_DIR.glob("*.toml")}
        >= {
            "post-purchase.toml",
            "cart.toml",
            "care.toml",
            "consent-notice.toml",
            "win-back.toml",
        }
    )


# Each case: a template file's text, and a piece of the one problem the check must report.
BAD = {
    "undeclared variable": (
        '[t]\nvariables = ["a"]\n[t.sms]\ntext = "#{a} #{coupon}"\n',
        "shop.toml: template 't': sms uses #{coupon}, which is not declared: add it to variables",
    ),
    "unused declared variable": (
        '[t]\nvariables = ["a", "b"]\n[t.sms]\ntext = "#{a}"\n',
        "declares variable 'b', which no channel uses",
    ),
    "malformed placeholder": ('[t]\n[t.sms]\ntext = "쿠폰 #{code"\n', "malformed placeholder #{code"),
    "emoji on sms": ('[t]\n[t.sms]\ntext = "할인 🎉"\n', "cannot be sent by SMS/LMS (not in cp949)"),
    "sms over the lms limit": ('[t]\n[t.sms]\ntext = "' + "가" * 1001 + '"\n', "over the LMS limit of 2000"),
    "ad decoration pushes over": (
        '[t]\npurpose = "advertising"\n[t.sms]\ntext = "' + "가" * 985 + '"\n',
        "over the LMS limit of 2000",
    ),
    "lms subject too long": ('[t]\n[t.sms]\nsubject = "' + "제" * 21 + '"\ntext = "x"\n', "LMS subject limit of 40"),
    "ad on alimtalk": (
        '[t]\npurpose = "advertising"\n[t.alimtalk]\ntemplate_code = "T1"\ntext = "x"\n',
        "alimtalk carries informational messages only",
    ),
    "alimtalk without template code": ('[t]\n[t.alimtalk]\ntext = "x"\n', "alimtalk needs template_code"),
    "alimtalk too long": (
        '[t]\n[t.alimtalk]\ntemplate_code = "T"\ntext = "' + "가" * 1001 + '"\n',
        "characters, over its 1000",
    ),
    "email without subject": ('[t]\n[t.email]\ntext = "x"\n', "email needs a subject"),
    "undeclared html variable": (
        '[t]\nvariables = ["a"]\n[t.email]\nsubject = "s"\ntext = "#{a}"\nhtml = "<p>{{ a }} {{ b }}</p>"\n',
        "email uses #{b}, which is not declared",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_broken_template_is_reported_in_one_line_naming_file_and_template(tmp_path: Path, case: str) -> None:
    text, expected = BAD[case]
    found = problems(tmp_path, text)
    assert len(found) == 1 and expected in found[0], found
    assert "\n" not in found[0]


# Mistakes that keep a file from loading at all: one line naming file and template.
UNLOADABLE = {
    "not toml": ("[t\ntext = 1", "shop.toml: not valid TOML"),
    "unknown channel": ('[t]\n[t.kakao]\ntext = "x"\n', "'kakao' is neither a channel"),
    "unknown field": ('[t]\n[t.sms]\ntext = "x"\ntitle = "y"\n', "sms.title: Extra inputs are not permitted"),
    "no channel": ('[t]\npurpose = "informational"\n', "has no channel"),
    "bad purpose": ('[t]\npurpose = "promo"\n[t.sms]\ntext = "x"\n', "purpose must be informational or advertising"),
    "html on sms": ('[t]\n[t.sms]\ntext = "x"\nhtml = "<p>x</p>"\n', "html is for e-mail only"),
    "broken jinja": ('[t]\n[t.email]\nsubject = "s"\ntext = "x"\nhtml = "{{ a "\n', "email.html line 1"),
    "missing text": ('[t]\n[t.sms]\nsubject = "y"\n', "sms.text: Field required"),
}


@pytest.mark.parametrize("case", sorted(UNLOADABLE))
def test_a_file_that_cannot_load_names_file_and_template(tmp_path: Path, case: str) -> None:
    text, expected = UNLOADABLE[case]
    with pytest.raises(TemplateError) as err:
        load_templates(write(tmp_path, text))
    assert expected in str(err.value) and "shop.toml" in str(err.value)


def test_the_same_code_in_two_files_is_refused(tmp_path: Path) -> None:
    write(tmp_path, '[t]\n[t.sms]\ntext = "a"\n', "a.toml")
    write(tmp_path, '[t]\n[t.sms]\ntext = "b"\n', "b.toml")
    with pytest.raises(TemplateError, match="b.toml: template 't' is defined in another file too"):
        load_templates(tmp_path)


def test_the_worker_refuses_templates_the_journeys_cannot_send_from(tmp_path: Path) -> None:
    # A shop's own copy of two reference templates that lack channels the journeys send them on.
    (tmp_path / "mine.toml").write_text(
        '[order_paid]\nvariables = ["order_id"]\n[order_paid.alimtalk]\ntemplate_code = "T1"\ntext = "#{order_id}"\n'
        '[order_shipped]\nvariables = ["order_id"]\n[order_shipped.sms]\ntext = "#{order_id}"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        journey_templates(Settings(templates_dir=tmp_path))
    message = str(err.value)
    assert message.startswith("JOURNEYS_TEMPLATES_DIR (") and "which a journey sends it on" in message
    assert re.search(r"\(and \d+ more\)", message) and "journeys templates check" in message


def test_a_shop_s_directory_adds_to_the_reference_templates(tmp_path: Path) -> None:
    # Only a file of the shop's own: the reference journeys keep every template they need.
    (tmp_path / "shop.toml").write_text('[hello]\n[hello.sms]\ntext = "안녕하세요"\n', encoding="utf-8")
    registry = journey_templates(Settings(templates_dir=tmp_path))
    assert {"hello", "order_paid", "cart_reminder"} <= {t.code for t in registry}


def test_copy_changes_by_editing_a_file(tmp_path: Path) -> None:
    for path in PACKAGED_DIR.glob("*.toml"):
        text = path.read_text(encoding="utf-8").replace("결제가 완료되었습니다", "결제 감사합니다")
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    registry = journey_templates(Settings(templates_dir=tmp_path))
    rendered = registry.render(
        "order_paid", Channel.SMS, {"customer_name": "하늘", "order_id": "1", "item_name": "양말", "amount": "5,000"}
    )
    assert rendered.body.startswith("하늘님, 결제 감사합니다.")


def test_email_html_escapes_every_variable(tmp_path: Path) -> None:
    registry = load_templates(PACKAGED_DIR)
    hostile = '<script>alert(1)</script>"'
    rendered = registry.render(
        "cart_coupon",
        Channel.EMAIL,
        {"customer_name": hostile, "item_names": hostile, "cart_total": "1", "coupon_code": hostile, "cart_url": "/c"},
    )
    assert rendered.html is not None and "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in rendered.html


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=50))
def test_no_variable_value_reaches_the_html_unescaped(value: str) -> None:
    registry = load_templates(PACKAGED_DIR)
    html = registry.render("care_welcome", Channel.EMAIL, {"customer_name": value, "tutorial_url": value}).html
    assert html is not None
    for dangerous in "<>\"'":
        if dangerous in value:
            assert dangerous not in html.replace("<h1>", "").replace("</h1>", "").replace("<p>", "").replace(
                "</p>", ""
            ).replace('<a href="', "").replace('">', "").replace("</a>", "")


def journeys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durable_journeys.starter.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_templates_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    write(tmp_path, '[t]\nvariables = ["a"]\n[t.sms]\ntext = "#{b}"\n[t.alimtalk]\ntext = "x"\n')
    import os

    done = journeys("templates", "check", env={**os.environ, "JOURNEYS_TEMPLATES_DIR": str(tmp_path)})
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any("sms uses #{b}, which is not declared" in line for line in lines)
    assert any("alimtalk needs template_code" in line for line in lines)
    assert lines[-1].endswith(f"problem(s) in {tmp_path}") and "Traceback" not in done.stderr


def test_templates_check_passes_on_the_packaged_files() -> None:
    ok, lines = check_report(Settings())
    files = sorted(p.name for p in PACKAGED_DIR.glob("*.toml"))
    assert ok and lines == [
        f"{len(load_templates(PACKAGED_DIR))} templates in {len(files)} file(s) of {PACKAGED_DIR}: OK ({', '.join(files)})"
    ]


def test_render_previews_an_ad_sms_as_billed() -> None:
    lines = render_preview(Settings(), "recent_buyer_sale", Channel.SMS, {"sale_url": "https://s.example"})
    assert lines[0] == "template recent_buyer_sale · sms · advertising"
    assert lines[1].startswith("kind: LMS (")
    assert "subject: 최근 구매 고객 특별 할인" in lines
    body = "\n".join(lines[lines.index("---") + 1 :]).splitlines()
    assert body[0] == "(광고)듀러블샵" and body[-1] == "무료수신거부 080-000-0000"


def test_render_previews_a_short_informational_sms_without_its_subject() -> None:
    lines = render_preview(
        Settings(), "order_paid", Channel.SMS, {"order_id": "1", "item_name": "양말", "amount": "5000"}
    )
    assert lines[1].startswith("kind: SMS (") and not [line for line in lines if line.startswith("subject:")]


def test_render_previews_an_ad_email_with_its_headers_and_opt_out() -> None:
    variables = {"item_names": "<b>양말</b>", "cart_total": "5000", "coupon_code": "C1", "cart_url": "/c"}
    out = "\n".join(render_preview(Settings(), "cart_coupon", Channel.EMAIL, variables))
    assert "Subject: (광고) 고객님을 위한 장바구니 쿠폰" in out
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in out
    assert "(text/html)" in out and "&lt;b&gt;양말&lt;/b&gt;" in out and "수신거부" in out


@pytest.mark.parametrize(
    ("code", "channel", "variables", "expected"),
    [
        ("cart_coupon", Channel.EMAIL, {}, "needs variable(s) cart_total, cart_url, coupon_code, item_names"),
        ("nosuch", Channel.SMS, {}, "unknown template 'nosuch'"),
        ("order_paid", Channel.EMAIL, {}, "has no text for email (it has alimtalk, sms)"),
    ],
)
def test_render_mistakes_name_what_to_fix(
    code: str, channel: Channel, variables: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        render_preview(Settings(), code, channel, variables)


def test_a_render_mistake_on_the_command_line_is_one_line() -> None:
    done = journeys("templates", "render", "order_paid", "-c", "sms", "--var", "oops")
    assert done.returncode == 2 and "--var 'oops': write it as name=value" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
