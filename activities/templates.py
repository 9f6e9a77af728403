"""Message templates: per-channel text with ``#{var}`` placeholders (the AlimTalk syntax).

Templates live in files, one TOML file per journey (``activities/template_files`` ships the
reference journeys'; ``JOURNEYS_TEMPLATES_DIR`` points at a shop's own). Each template declares
its purpose and variables and has a table per channel: ``text``, ``subject`` (LMS subject, push
title, e-mail subject), ``html`` (e-mail only: Jinja2, autoescaped), ``template_code`` (the
Kakao-approved AlimTalk or Brand Message template, the RCS format, the in-app kind) and
``image_keys``. :func:`check_templates` validates them at worker start and in
``journeys templates check``; a journey's variables are checked again before it starts, so a
missing variable never surfaces weeks later at send time.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from durable_journeys.activities.customers import CustomerProfile
from durable_journeys.providers import Channel, Purpose, TemplateError, cp949_length
from durable_journeys.providers.channels import AdRule, channel_spec
from durable_journeys.providers.korean import LMS_MAX_BYTES, LMS_SUBJECT_MAX_BYTES

_VAR = re.compile(r"#\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ANY_VAR = re.compile(r"#\{([^}\n]*)(\}?)")
PACKAGED_DIR = Path(__file__).parent / "template_files"
# Variables every template may use: filled from the profile at send time, never in history.
PROFILE_VARIABLES = frozenset({"customer_name"})
# Kakao's limits: AlimTalk and Brand Message text up to 1,000 characters.
# Channels whose rules forbid ads: AlimTalk carries informational messages only.
MAX_TEMPLATE_FILE_BYTES = 1_000_000


@cache
def _jinja() -> SandboxedEnvironment:
    # Sandboxed (a template file cannot reach Python objects), autoescaped (a variable's HTML is
    # shown as text), strict (a missing variable is an error, never an empty string).
    return SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)


def _html_variables(source: str) -> set[str]:
    return set(meta.find_undeclared_variables(_jinja().parse(source)))


class Template(BaseModel):
    """One message in every channel it can go out on."""

    model_config = ConfigDict(frozen=True)

    code: str
    purpose: Purpose = Purpose.INFORMATIONAL
    texts: dict[Channel, str]
    subjects: dict[Channel, str] = Field(default_factory=dict)
    html: dict[Channel, str] = Field(default_factory=dict, description="e-mail HTML bodies (Jinja2, autoescaped)")
    provider_template_codes: dict[Channel, str] = Field(
        default_factory=dict,
        description="the provider's own template per channel: the Kakao-approved AlimTalk or Brand Message "
        "template code, the RCS format id",
    )
    image_keys: dict[Channel, list[str]] = Field(
        default_factory=dict,
        description="provider file keys of images (Bizgo MMS fileKey, at most 3): an SMS with images is an MMS",
    )
    declared: frozenset[str] | None = Field(
        default=None, description="the variables the template file declares (None: not declared)"
    )
    source: str | None = Field(default=None, description="the file it came from")

    def variables(self, channels: Iterable[Channel] | None = None) -> set[str]:
        """Placeholders used on ``channels`` (all channels by default)."""
        chosen = self.texts if channels is None else [c for c in channels if c in self.texts]
        names: set[str] = set()
        for ch in chosen:
            names |= set(_VAR.findall(self.texts[ch]))
            names |= set(_VAR.findall(self.subjects.get(ch, "")))
            if ch in self.html:
                names |= _html_variables(self.html[ch])
        return names


class Rendered(BaseModel):
    """A template filled in for one channel."""

    body: str
    subject: str | None = None
    html: str | None = None
    provider_template_code: str | None = None
    image_keys: list[str] = Field(default_factory=list)


def profile_variables(profile: CustomerProfile) -> dict[str, str]:
    """Variables filled from the profile at send time, so history holds no personal data."""
    return {"customer_name": profile.name or "고객"}


def _fill(text: str, variables: Mapping[str, str]) -> str:
    return _VAR.sub(lambda m: variables[m.group(1)], text)


class TemplateRegistry:
    """Templates by code."""

    def __init__(self, templates: Iterable[Template] = (), *, checked_later: bool = False) -> None:
        self._templates: dict[str, Template] = {}
        for template in templates:
            self.register(template, checked_later=checked_later)

    def __iter__(self) -> Any:
        return iter(self._templates.values())

    def __len__(self) -> int:
        return len(self._templates)

    def register(self, template: Template, *, checked_later: bool = False) -> None:
        """Add a template.

        Args:
            template: the template.
            checked_later: skip the cp949 check (:func:`check_template` reports it with the others).

        Raises:
            TemplateError: the code is taken, or phone-channel text is not cp949-encodable.
        """
        if template.code in self._templates:
            where = f" ({template.source})" if template.source else ""
            raise TemplateError(f"template {template.code!r} is registered twice{where}")
        for channel, text in [] if checked_later else template.texts.items():
            if channel_spec(channel).phone:
                cp949_length(text)
                cp949_length(template.subjects.get(channel, ""))
        self._templates[template.code] = template

    def get(self, code: str) -> Template:
        """The template with ``code``.

        Raises:
            TemplateError: no such template.
        """
        try:
            return self._templates[code]
        except KeyError:
            raise TemplateError(f"unknown template {code!r}") from None

    def validate(self, code: str, channels: Iterable[Channel], variables: Mapping[str, str]) -> None:
        """Check that ``code`` exists, covers ``channels`` and gets every variable it uses.

        Raises:
            TemplateError: what is wrong, named.
        """
        template = self.get(code)
        channels = list(channels)
        missing_channels = [c.value for c in channels if c not in template.texts]
        if missing_channels:
            raise TemplateError(f"template {code!r} has no text for {', '.join(missing_channels)}")
        missing = sorted(template.variables(channels) - set(variables))
        if missing:
            raise TemplateError(f"template {code!r} needs variable(s) {', '.join(missing)}")
        for channel in channels:
            if channel_spec(channel).phone:
                self.render(code, channel, variables)  # catches values cp949 cannot carry

    def render(self, code: str, channel: Channel, variables: Mapping[str, str]) -> Rendered:
        """Fill in the template for ``channel``.

        Raises:
            TemplateError: unknown template or channel, a missing variable, or text a phone
                channel cannot carry.
        """
        template = self.get(code)
        if channel not in template.texts:
            raise TemplateError(f"template {code!r} has no text for {channel.value}")
        missing = sorted(template.variables([channel]) - set(variables))
        if missing:
            raise TemplateError(f"template {code!r} needs variable(s) {', '.join(missing)}")
        body = _fill(template.texts[channel], variables)
        subject = template.subjects.get(channel)
        subject = _fill(subject, variables) if subject else None
        if channel_spec(channel).phone:
            cp949_length(body)
            cp949_length(subject or "")
        html = None
        if channel in template.html:
            try:
                html = _jinja().from_string(template.html[channel]).render(**variables)
            except (UndefinedError, TemplateSyntaxError) as exc:
                raise TemplateError(f"template {code!r}: e-mail HTML cannot be rendered ({exc.message})") from None
        return Rendered(
            body=body,
            subject=subject,
            html=html,
            provider_template_code=template.provider_template_codes.get(channel),
            image_keys=template.image_keys.get(channel, []),
        )


# files --------------------------------------------------------------------------------------


class ChannelTemplate(BaseModel):
    """One channel's table in a template file."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=10_000)
    subject: str | None = Field(default=None, min_length=1, max_length=500)
    html: str | None = Field(default=None, min_length=1, max_length=200_000)
    template_code: str | None = Field(default=None, min_length=1, max_length=100)
    image_keys: list[str] = Field(default_factory=list, max_length=3)


_TEMPLATE_KEYS = ("purpose", "variables", "description")


def _template_from(code: str, table: Any, source: str) -> Template:
    """A template from its table in a file.

    Raises:
        TemplateError: one line naming the file, the template and what is wrong.
    """
    where = f"{source}: template {code!r}"
    if not isinstance(table, dict):
        raise TemplateError(f"{where}: must be a table ([{code}] with a sub-table per channel)")
    try:
        purpose = Purpose(table.get("purpose", Purpose.INFORMATIONAL.value))
    except ValueError:
        raise TemplateError(f"{where}: purpose must be informational or advertising") from None
    declared = table.get("variables", [])
    if not isinstance(declared, list) or not all(isinstance(v, str) and _VAR.fullmatch(f"#{{{v}}}") for v in declared):
        raise TemplateError(f'{where}: variables must be a list of names such as ["order_id"]')
    channels: dict[Channel, ChannelTemplate] = {}
    for key, value in table.items():
        if key in _TEMPLATE_KEYS:
            continue
        try:
            channel = Channel(key)
        except ValueError:
            names = ", ".join(c.value for c in Channel)
            raise TemplateError(
                f"{where}: {key!r} is neither a channel ({names}) nor one of purpose, variables; "
                "a channel of your own is registered by a module named in JOURNEYS_PLUGINS"
            ) from None
        try:
            channels[channel] = ChannelTemplate.model_validate(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or "table"
            raise TemplateError(f"{where}: {channel.value}.{field}: {first['msg']}") from None
    if not channels:
        raise TemplateError(f"{where}: has no channel (add a table such as [{code}.sms] with a text)")
    for channel, spec in channels.items():
        if spec.html is not None and not channel_spec(channel).html:
            raise TemplateError(f"{where}: {channel.value}: html is for e-mail only")
        if spec.html is not None:
            try:
                _jinja().parse(spec.html)
            except TemplateSyntaxError as exc:
                raise TemplateError(f"{where}: email.html line {exc.lineno}: {exc.message}") from None
    return Template(
        code=code,
        purpose=purpose,
        texts={c: s.text for c, s in channels.items()},
        subjects={c: s.subject for c, s in channels.items() if s.subject is not None},
        html={c: s.html for c, s in channels.items() if s.html is not None},
        provider_template_codes={c: s.template_code for c, s in channels.items() if s.template_code is not None},
        image_keys={c: s.image_keys for c, s in channels.items() if s.image_keys},
        declared=frozenset(declared),
        source=source,
    )


def template_files(directory: Path) -> list[Path]:
    """The template files of ``directory`` (``*.toml``), in name order.

    Raises:
        TemplateError: the directory does not exist or holds no template file.
    """
    if not directory.is_dir():
        raise TemplateError(f"template directory {directory} does not exist")
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise TemplateError(f"template directory {directory} holds no *.toml file")
    return files


def load_templates(directory: Path | None = None) -> TemplateRegistry:
    """The reference journeys' templates, and those of the files in ``directory`` (``JOURNEYS_TEMPLATES_DIR``).

    The shop's files add templates of its own journeys; one with the code of a reference template
    replaces it (the shop's own copy). Two of the shop's files defining one code is a mistake.

    Raises:
        TemplateError: a file that does not parse or a template that is malformed, named.
    """
    registry = _load_files(template_files(PACKAGED_DIR))
    if directory is None or directory.resolve() == PACKAGED_DIR.resolve():
        return registry
    own = _load_files(template_files(directory))
    return TemplateRegistry([*(t for t in registry if t.code not in {o.code for o in own}), *own], checked_later=True)


def _load_files(paths: Iterable[Path]) -> TemplateRegistry:
    registry = TemplateRegistry()
    for path in paths:
        if path.stat().st_size > MAX_TEMPLATE_FILE_BYTES:
            raise TemplateError(f"{path.name}: larger than {MAX_TEMPLATE_FILE_BYTES:,} bytes")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise TemplateError(f"{path.name}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise TemplateError(f"{path.name}: not valid TOML ({exc})") from None
        for code, table in data.items():
            template = _template_from(code, table, path.name)
            if code in {t.code for t in registry}:
                raise TemplateError(f"{path.name}: template {code!r} is defined in another file too")
            registry.register(template, checked_later=True)
    return registry


def default_templates() -> TemplateRegistry:
    """The templates the reference journeys use (the packaged files)."""
    return load_templates(PACKAGED_DIR)


# checks -------------------------------------------------------------------------------------


def _static(text: str) -> str:
    """``text`` without its placeholders: the part whose length is known before sending."""
    return _VAR.sub("", text)


def check_template(template: Template, decorate: Any = None) -> list[str]:
    """What is wrong with one template, one line per problem (empty: nothing).

    Checks placeholders against the declared variables, cp949 and byte limits on SMS/LMS and
    Kakao's limits (with the ad decoration ``decorate(body, channel, purpose)`` adds), that
    AlimTalk carries no ad and has its approved template code, and e-mail's subject.
    """
    where = f"{template.source + ': ' if template.source else ''}template {template.code!r}"
    problems: list[str] = []
    declared = (template.declared or frozenset()) | PROFILE_VARIABLES
    used: set[str] = set()
    for channel, text in template.texts.items():
        fields = {"text": text}
        if channel in template.subjects:
            fields["subject"] = template.subjects[channel]
        for name, value in fields.items():
            for raw, closed in _ANY_VAR.findall(value):
                if not closed or not _VAR.fullmatch(f"#{{{raw}}}"):
                    problems.append(f"{where}: {channel.value}.{name}: malformed placeholder #{{{raw}{closed}")
        names = template.variables([channel])
        used |= names
        if template.declared is not None:
            for name in sorted(names - declared):
                problems.append(
                    f"{where}: {channel.value} uses #{{{name}}}, which is not declared: add it to variables"
                )
        traits = channel_spec(channel)
        if template.purpose is Purpose.ADVERTISING and traits.advertising is AdRule.FORBIDDEN:
            problems.append(
                f"{where}: {channel.value} carries informational messages only; send ads by brand_message or sms"
            )
        body = _static(text)
        if decorate is not None:
            body = decorate(body, channel, template.purpose)
        subject = _static(template.subjects.get(channel, ""))
        try:
            if channel_spec(channel).phone:
                cp949_length(body)
                cp949_length(subject)
        except TemplateError as exc:
            problems.append(f"{where}: {channel.value}: {exc}")
            continue
        if traits.sms:
            size = cp949_length(body)
            if size > LMS_MAX_BYTES:
                problems.append(
                    f"{where}: sms text is {size} bytes without its variables, over the LMS limit of {LMS_MAX_BYTES}"
                )
            if cp949_length(subject) > LMS_SUBJECT_MAX_BYTES:
                problems.append(f"{where}: sms subject is over the LMS subject limit of {LMS_SUBJECT_MAX_BYTES} bytes")
        if traits.max_chars is not None and len(body) > traits.max_chars:
            problems.append(f"{where}: {channel.value} text is {len(body)} characters, over its {traits.max_chars}")
        if traits.provider_template and channel not in template.provider_template_codes:
            problems.append(
                f"{where}: {channel.value} needs template_code, the provider-approved template its text matches"
            )
        if traits.subject and channel not in template.subjects:
            problems.append(f"{where}: {channel.value} needs a subject")
    if template.declared is not None:
        for name in sorted(template.declared - used):
            problems.append(f"{where}: declares variable {name!r}, which no channel uses")
    return problems


def check_templates(
    registry: TemplateRegistry, decorate: Any = None, *, required: Mapping[str, Iterable[Channel]] | None = None
) -> list[str]:
    """Every problem of every template, plus what the journeys need and no file has.

    Args:
        registry: the templates.
        decorate: the ad decoration, ``decorate(body, channel, purpose)``.
        required: template code -> the channels journeys send it on.
    """
    problems = [p for t in registry for p in check_template(t, decorate)]
    known = {t.code: t for t in registry}
    for code, channels in sorted((required or {}).items()):
        if code not in known:
            problems.append(f"template {code!r} is used by a journey but defined in no file")
            continue
        missing = [c.value for c in channels if c not in known[code].texts]
        if missing:
            where = f"{known[code].source}: " if known[code].source else ""
            problems.append(
                f"{where}template {code!r} has no text for {', '.join(missing)}, which a journey sends it on"
            )
    return problems
