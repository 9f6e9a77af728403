"""``journeys templates check`` and ``journeys templates render``: template files before they go live."""

from __future__ import annotations

from email.message import EmailMessage

from durable_journeys.activities.compose import compose, effective_purpose
from durable_journeys.activities.templates import PACKAGED_DIR, PROFILE_VARIABLES
from durable_journeys.providers import Channel, ConfigError, OutboundMessage, Purpose, TemplateError
from durable_journeys.providers.channels import channel_spec
from durable_journeys.providers.korean import SMS_MAX_BYTES, cp949_length
from durable_journeys.providers.smtp.provider import SmtpConfig, SmtpProvider
from durable_journeys.starter.assembly import template_problems
from durable_journeys.starter.settings import Settings


def check_report(settings: Settings) -> tuple[bool, list[str]]:
    """Whether the template files are fine, and the lines to print (every problem, or a summary)."""
    registry, problems = template_problems(settings)
    where = settings.templates_dir or PACKAGED_DIR
    if problems or registry is None:
        return False, [*problems, f"{len(problems)} problem(s) in {where}"]
    files = sorted({t.source for t in registry if t.source})
    return True, [f"{len(registry)} templates in {len(files)} file(s) of {where}: OK ({', '.join(files)})"]


def parse_vars(pairs: list[str]) -> dict[str, str]:
    """``k=v`` pairs as a dict.

    Raises:
        ConfigError: a pair without ``=``.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--var {pair!r}: write it as name=value")
        out[name] = value
    return out


def render_preview(settings: Settings, code: str, channel: Channel, variables: dict[str, str]) -> list[str]:
    """The message ``code`` makes on ``channel``, as the provider gets it, for printing.

    Raises:
        ConfigError: the templates do not load, or this one cannot be rendered with ``variables``.
    """
    registry, problems = template_problems(settings)
    if registry is None:
        raise ConfigError(problems[0])
    template = registry.get(code)
    if channel not in template.texts:
        has = ", ".join(c.value for c in template.texts)
        raise TemplateError(f"template {code!r} has no text for {channel.value} (it has {has})")
    values = {name: "고객" for name in PROFILE_VARIABLES} | variables
    missing = sorted(template.variables([channel]) - set(values))
    if missing:
        raise TemplateError(
            f"template {code!r} needs variable(s) {', '.join(missing)}: pass --var {missing[0]}=… for each"
        )
    purpose = effective_purpose(registry, code, Purpose.INFORMATIONAL)
    msg = compose(
        registry,
        settings.policy(),
        template=code,
        channel=channel,
        purpose=purpose,
        variables=values,
        to=channel_spec(channel).preview_address,
        idempotency_key=f"preview:{code}:{channel.value}",
    )
    lines = [f"template {code} · {channel.value} · {purpose.value}"]
    if msg.sms_kind is not None:
        size = cp949_length(msg.body)
        lines.append(f"kind: {msg.sms_kind.value.upper()} ({size} bytes in cp949; an SMS holds {SMS_MAX_BYTES})")
    if msg.template_code:
        lines.append(f"provider template: {msg.template_code}")
    if msg.image_keys:
        lines.append(f"images: {', '.join(msg.image_keys)}")
    if channel_spec(channel).html:
        return lines + _email_lines(settings, msg)
    if msg.subject:
        lines.append(f"subject: {msg.subject}")
    return [*lines, "---", msg.body]


def _email_lines(settings: Settings, msg: OutboundMessage) -> list[str]:
    """The e-mail as the SMTP provider builds it: subject, unsubscribe headers, text and HTML bodies."""
    config = SmtpConfig(
        host=settings.smtp_host or "smtp.example.com",
        sender=settings.smtp_sender or "Shop <shop@example.com>",
        unsubscribe_url=settings.smtp_unsubscribe_url or "https://shop.example/unsubscribe?ref={ref}",
        unsubscribe_mailto=settings.smtp_unsubscribe_mailto,
    )
    mail: EmailMessage = SmtpProvider(config).message(msg)
    lines = [f"{name}: {mail[name]}" for name in ("Subject", "List-Unsubscribe", "List-Unsubscribe-Post") if mail[name]]
    for part in mail.iter_parts():
        lines += ["---", f"({part.get_content_type()})", str(part.get_content()).rstrip("\n")]
    return lines
