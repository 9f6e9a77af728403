"""The per-step report marketers ask for (``journeys report``), from the message log.

Per journey, step and channel: messages sent (the provider took them), delivered (a receipt said
so, or the channel has no receipts), failed (refused, or a failed receipt), sent as a fallback
(an earlier channel of the step did not deliver), skipped by reason and deferred (the contact
policy), opened and clicked (``message.opened``/``message.clicked``), resent by an operator,
and converted: an order of the customer paid within the attribution window after the message,
credited to the customer's last message before it (last touch, so each order counts once);
revenue is what the converted orders paid, cost the price of the messages sent (per message
type: ``JOURNEYS_MESSAGE_PRICES``). Experiments and the holdout have a section of their own
(``experiment_report``): per variant, customers, conversions, revenue, cost and a verdict.

Times are journey time (``journey_time`` in the log), the same clock as the orders' ``paid_at``.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from durable_journeys.activities import KST
from durable_journeys.activities.store import (
    Assignment,
    Engagement,
    MessageRecord,
    MessageStatus,
    PaidOrder,
    SkipRecord,
    Store,
)
from durable_journeys.starter.experiment_report import (
    Arm,
    ExperimentResult,
    delivered,
    experiment_results,
    price_of,
    sent_at,
)
from durable_journeys.starter.settings.operators import DEFAULT_PRICES

COUNTS = ("sent", "delivered", "failed", "fallback", "opened", "clicked", "converted", "resent", "deferred")


class ReportRow(BaseModel):
    """One journey, step and channel."""

    journey: str
    step: str
    channel: str
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    fallback: int = Field(default=0, description="sent on this channel because an earlier one did not deliver")
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    resent: int = 0
    deferred: int = 0
    skipped: dict[str, int] = Field(default_factory=dict, description="reason -> sends skipped")
    revenue: int = Field(default=0, description="KRW paid by the orders this row converted")
    cost: float = Field(default=0.0, description="KRW, the price of the messages sent")

    @property
    def conversion(self) -> float | None:
        """Converted per message sent (None when nothing was sent)."""
        return self.converted / self.sent if self.sent else None


class Report(BaseModel):
    """The report over ``[since, until)``."""

    since: datetime
    until: datetime
    attribution: timedelta
    journey: str | None = None
    rows: list[ReportRow]
    experiments: list[ExperimentResult] = Field(default_factory=list)

    def journeys(self) -> list[str]:
        """The journeys in the report, in order of their first row."""
        return list(dict.fromkeys(r.journey for r in self.rows))

    def funnel(self, journey: str) -> list[tuple[str, dict[str, int]]]:
        """Each step of ``journey`` (in order) with its counts summed over channels."""
        steps: dict[str, dict[str, int]] = {}
        for row in self.rows:
            if row.journey == journey:
                totals = steps.setdefault(row.step, dict.fromkeys(COUNTS, 0))
                for name in COUNTS:
                    totals[name] += getattr(row, name)
        return list(steps.items())

    def channels(self) -> list[tuple[str, dict[str, int]]]:
        """Counts per channel over every journey."""
        channels: dict[str, dict[str, int]] = {}
        for row in self.rows:
            totals = channels.setdefault(row.channel, dict.fromkeys(COUNTS, 0))
            for name in COUNTS:
                totals[name] += getattr(row, name)
        return sorted(channels.items())


def _logical(key: str) -> str:
    """A message's key without a failover provider's suffix (``...:sms~bizgo`` -> ``...:sms``)."""
    head, _, last = key.rpartition(":")
    return f"{head}:{last.split('~', 1)[0]}"


def build_report(
    messages: Sequence[MessageRecord],
    skips: Sequence[SkipRecord],
    engagements: Sequence[Engagement],
    orders: Sequence[PaidOrder],
    *,
    since: datetime,
    until: datetime,
    attribution: timedelta,
    journey: str | None = None,
    assignments: Sequence[Assignment] = (),
    prices: Mapping[str, float] = DEFAULT_PRICES,
) -> Report:
    """Count the log's rows into the report (see the module's docstring for what each count means)."""
    rows: dict[tuple[str, str, str], ReportRow] = {}

    def row(journey_name: str, step: str, channel: str) -> ReportRow:
        key = (journey_name, step, channel)
        if key not in rows:
            rows[key] = ReportRow(journey=journey_name, step=step, channel=channel)
        return rows[key]

    # One logical message per key (a failover provider's row is the same message).
    logical: dict[str, MessageRecord] = {}
    for m in messages:
        key = _logical(m.idempotency_key)
        kept = logical.get(key)
        if kept is None or (m.status is MessageStatus.ACCEPTED and kept.status is not MessageStatus.ACCEPTED):
            logical[key] = m
    tried_before: set[tuple[str, str | None, str]] = set()  # step instances with an earlier channel
    sent: list[MessageRecord] = []
    for m in sorted(logical.values(), key=lambda m: (sent_at(m), m.idempotency_key)):
        name = m.journey or m.workflow_id.split(":", 1)[0]
        r = row(name, m.step, m.channel)
        instance = (m.workflow_id, m.episode, m.step)
        if m.resend_of:
            r.resent += m.status is MessageStatus.ACCEPTED
            continue
        if instance in tried_before:
            r.fallback += 1
        tried_before.add(instance)
        if m.status is MessageStatus.REJECTED:
            r.failed += 1
            continue
        if m.status is not MessageStatus.ACCEPTED:
            continue  # still sending, or unknown: not counted until it settles
        r.sent += 1
        r.cost += price_of(m, prices)
        sent.append(m)
        if delivered(m):
            r.delivered += 1
        elif m.receipt_status is not None:
            r.failed += 1
    for skip in skips:
        r = row(skip.journey, skip.step, skip.channel)
        if skip.status == "skipped":
            r.skipped[skip.reason] = r.skipped.get(skip.reason, 0) + 1
        else:
            r.deferred += 1

    by_customer: dict[str, list[MessageRecord]] = defaultdict(list)
    for m in sent:
        by_customer[m.customer_id].append(m)

    def last_touch(
        customer_id: str,
        at: datetime,
        *,
        step: str | None = None,
        channel: str | None = None,
        order_id: str | None = None,
    ) -> MessageRecord | None:
        """The customer's latest message at or before ``at`` within the window (strictly before, for an order)."""
        found = None
        for m in by_customer.get(customer_id, ()):
            when = sent_at(m)
            if when > at or at - when > attribution or (order_id is not None and when == at):
                continue
            if (step is not None and m.step != step) or (channel is not None and m.channel != channel):
                continue
            if order_id is not None and m.workflow_id.endswith(f":{order_id}"):
                continue  # an order's own notices (its post-purchase journey) do not convert it
            if found is None or when >= sent_at(found):
                found = m
        return found

    marked: dict[str, set[str]] = {"opened": set(), "clicked": set(), "converted": set()}
    for e in engagements:
        touched = last_touch(e.customer_id, e.at, step=e.step, channel=e.channel)
        if touched is not None and e.kind in ("opened", "clicked"):
            marked[e.kind].add(touched.idempotency_key)
            if e.kind == "clicked":  # a click is an open too
                marked["opened"].add(touched.idempotency_key)
    revenue: dict[str, int] = defaultdict(int)
    for order in orders:
        touched = last_touch(order.customer_id, order.paid_at, order_id=order.order_id)
        if touched is not None:
            marked["converted"].add(touched.idempotency_key)
            revenue[touched.idempotency_key] += order.amount
    for m in sent:
        r = row(m.journey or m.workflow_id.split(":", 1)[0], m.step, m.channel)
        for kind, keys in marked.items():
            if m.idempotency_key in keys:
                setattr(r, kind, getattr(r, kind) + 1)
        r.revenue += revenue.get(m.idempotency_key, 0)
    for r in rows.values():
        r.cost = round(r.cost, 2)
    # Grouped by journey, steps in the order they first sent, each step's channels in their order.
    journeys = {name: i for i, name in enumerate(dict.fromkeys(k[0] for k in rows))}
    steps = {step: i for i, step in enumerate(dict.fromkeys(k[:2] for k in rows))}
    ordered = sorted(rows.values(), key=lambda r: (journeys[r.journey], steps[(r.journey, r.step)]))
    experiments = experiment_results(
        [a for a in assignments if journey is None or a.journey == journey],
        sent,
        skips,
        orders,
        marked,
        attribution=attribution,
        prices=prices,
    )
    return Report(
        since=since, until=until, attribution=attribution, journey=journey, rows=ordered, experiments=experiments
    )


async def journey_report(
    store: Store,
    *,
    since: datetime,
    until: datetime,
    attribution: timedelta,
    journey: str | None = None,
    prices: Mapping[str, float] = DEFAULT_PRICES,
) -> Report:
    """The report of the store's log over ``[since, until)``."""
    messages, skips, engagements, orders = await store.report_rows(
        since=since, until=until, attribution=attribution, journey=journey
    )
    assignments = await store.assignments(since=since, until=until)
    return build_report(
        messages,
        skips,
        engagements,
        orders,
        since=since,
        until=until,
        attribution=attribution,
        journey=journey,
        assignments=assignments,
        prices=prices,
    )


# rendering -------------------------------------------------------------------------------------


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _skipped(row: ReportRow) -> str:
    return " ".join(f"{reason}={n}" for reason, n in sorted(row.skipped.items())) or "-"


HEADERS = ("journey", "step", "channel", *COUNTS, "conversion", "revenue", "cost", "skipped")
ARM_COUNTS = ("customers", "sent", "delivered", "opened", "clicked", "converted")
ARM_HEADERS = ("experiment", "variant", *ARM_COUNTS, "conversion", "revenue", "cost")


def _won(amount: float) -> str:
    return f"{amount:,.0f}" if float(amount).is_integer() else f"{amount:,.2f}"


def _cells(row: ReportRow) -> list[str]:
    return [
        row.journey,
        row.step,
        row.channel,
        *(str(getattr(row, n)) for n in COUNTS),
        _percent(row.converted, row.sent),
        _won(row.revenue),
        _won(row.cost),
        _skipped(row),
    ]


def _arm_cells(experiment: ExperimentResult, arm: Arm) -> list[str]:
    return [
        experiment.experiment,
        arm.variant,
        *(str(getattr(arm, n)) for n in ARM_COUNTS),
        _percent(arm.converted, arm.customers),
        _won(arm.revenue),
        _won(arm.cost),
    ]


def _aligned(table: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() for cells in table]


def render_table(report: Report) -> str:
    """Aligned columns for a terminal: the steps, then each experiment's arms and verdict."""
    lines = [_period(report)]
    if report.rows or not report.experiments:  # (journeys report --experiments: the experiments only)
        lines.extend(_aligned([list(HEADERS), *(_cells(r) for r in report.rows)]))
    if not report.rows and not report.experiments:
        lines.append("(no messages in this period)")
    for experiment in report.experiments:
        lines.append("")
        lines.extend(_aligned([list(ARM_HEADERS), *(_arm_cells(experiment, a) for a in experiment.arms)]))
        lines.append(f"verdict: {experiment.verdict}")
    return "\n".join(lines) + "\n"


def render_csv(report: Report) -> str:
    """One row per journey, step and channel; skipped reasons as ``skipped_<reason>`` columns."""
    reasons = sorted({reason for r in report.rows for reason in r.skipped})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["journey", "step", "channel", *COUNTS, "conversion", "revenue", "cost", *(f"skipped_{r}" for r in reasons)]
    )
    for r in report.rows:
        conversion = f"{r.conversion:.4f}" if r.conversion is not None else ""
        writer.writerow(
            [
                *(_safe_csv(v) for v in (r.journey, r.step, r.channel)),
                *(getattr(r, n) for n in COUNTS),
                conversion,
                r.revenue,
                r.cost,
                *(r.skipped.get(reason, 0) for reason in reasons),
            ]
        )
    return out.getvalue()


def render_experiments_csv(report: Report) -> str:
    """One row per experiment and variant (``journeys report --experiments``), with the experiment's test."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*ARM_HEADERS, "test", "p_value", "significant", "verdict"])
    for e in report.experiments:
        for a in e.arms:
            conversion = f"{a.conversion:.4f}" if a.conversion is not None else ""
            writer.writerow(
                [
                    _safe_csv(e.experiment),
                    _safe_csv(a.variant),
                    *(getattr(a, n) for n in ARM_COUNTS),
                    conversion,
                    a.revenue,
                    a.cost,
                    e.test or "",
                    "" if e.p_value is None else f"{e.p_value:.6g}",
                    e.significant,
                    _safe_csv(e.verdict),
                ]
            )
    return out.getvalue()


def _safe_csv(value: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def render_json(report: Report) -> str:
    """The report as JSON (rows with their counts, conversion and skipped reasons)."""
    data = report.model_dump(mode="json")
    for row, model in zip(data["rows"], report.rows, strict=True):
        row["conversion"] = model.conversion
    for experiment, result in zip(data["experiments"], report.experiments, strict=True):
        for arm, model_arm in zip(experiment["arms"], result.arms, strict=True):
            arm["conversion"] = model_arm.conversion
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _period(report: Report) -> str:
    since, until = (t.astimezone(KST).strftime("%Y-%m-%d %H:%M") for t in (report.since, report.until))
    days = report.attribution.total_seconds() / 86400
    which = f" journey {report.journey}" if report.journey else ""
    return f"report{which}: {since} to {until} KST; conversion: an order within {days:g} days of the last message"


_STAGES = (
    ("sent", "#4c78a8"),
    ("delivered", "#72b7b2"),
    ("opened", "#f2cf5b"),
    ("clicked", "#eeca3b"),
    ("converted", "#54a24b"),
)


def _funnel_svg(steps: Sequence[tuple[str, dict[str, int]]]) -> str:
    """Per step, one bar per stage (sent, delivered, opened, clicked, converted), scaled to the widest."""
    widest = max((c["sent"] for _, c in steps), default=0) or 1
    bar, gap, label_width, width = 14, 4, 170, 640
    block = len(_STAGES) * (bar + gap) + 18
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{len(steps) * block + 10}">']
    for i, (step, counts) in enumerate(steps):
        top = i * block + 14
        parts.append(f'<text x="0" y="{top}" font-weight="bold">{html.escape(step)}</text>')
        for j, (stage, colour) in enumerate(_STAGES):
            y = top + 6 + j * (bar + gap)
            length = (width - label_width - 60) * counts[stage] / widest
            parts.append(f'<text x="8" y="{y + bar - 3}" font-size="12">{stage}</text>')
            parts.append(
                f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{bar}" fill="{colour}">'
                f"<title>{html.escape(step)} {stage}: {counts[stage]}</title></rect>"
            )
            parts.append(
                f'<text x="{label_width + length + 6:.1f}" y="{y + bar - 3}" font-size="12" '
                f'class="n" data-step="{html.escape(step)}" data-stage="{stage}">{counts[stage]}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _channel_svg(channels: Sequence[tuple[str, dict[str, int]]]) -> str:
    """One bar per channel: messages sent, the delivered part darker."""
    widest = max((c["sent"] for _, c in channels), default=0) or 1
    bar, gap, label_width, width = 18, 8, 120, 640
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{len(channels) * (bar + gap) + 10}">'
    ]
    for i, (channel, counts) in enumerate(channels):
        y = i * (bar + gap) + 4
        full = (width - label_width - 120) * counts["sent"] / widest
        part = (width - label_width - 120) * counts["delivered"] / widest
        parts.append(f'<text x="0" y="{y + bar - 4}">{html.escape(channel)}</text>')
        parts.append(f'<rect x="{label_width}" y="{y}" width="{full:.1f}" height="{bar}" fill="#9ecae9"/>')
        parts.append(f'<rect x="{label_width}" y="{y}" width="{part:.1f}" height="{bar}" fill="#4c78a8"/>')
        parts.append(
            f'<text x="{label_width + full + 6:.1f}" y="{y + bar - 4}" class="n" data-channel="{html.escape(channel)}">'
            f"{counts['delivered']} / {counts['sent']} delivered</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _experiment_svg(experiment: ExperimentResult) -> str:
    """One bar per arm: its conversion rate, scaled to the highest."""
    highest = max((a.conversion or 0.0 for a in experiment.arms), default=0.0) or 1.0
    bar, gap, label_width, width = 18, 8, 120, 640
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{len(experiment.arms) * (bar + gap) + 10}">'
    ]
    for i, arm in enumerate(experiment.arms):
        y = i * (bar + gap) + 4
        length = (width - label_width - 200) * (arm.conversion or 0.0) / highest
        colour = "#54a24b" if arm.variant == experiment.leader and experiment.significant else "#4c78a8"
        parts.append(f'<text x="0" y="{y + bar - 4}">{html.escape(arm.variant)}</text>')
        parts.append(f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{bar}" fill="{colour}"/>')
        parts.append(
            f'<text x="{label_width + length + 6:.1f}" y="{y + bar - 4}" class="n" '
            f'data-experiment="{html.escape(experiment.experiment)}" data-variant="{html.escape(arm.variant)}">'
            f"{_percent(arm.converted, arm.customers)} ({arm.converted} / {arm.customers})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _experiments_html(report: Report) -> str:
    if not report.experiments:
        return ""
    header = "".join(f"<th>{html.escape(h)}</th>" for h in ARM_HEADERS)
    sections = []
    for e in report.experiments:
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _arm_cells(e, a)) + "</tr>" for a in e.arms
        )
        sections.append(
            f"<section><h3>{html.escape(e.experiment)}</h3>{_experiment_svg(e)}"
            f'<p class="verdict">{html.escape(e.verdict)}</p>'
            f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></section>"
        )
    return "<section><h2>Experiments</h2>" + "".join(sections) + "</section>"


def render_html(report: Report) -> str:
    """One self-contained page (no script, no CDN, inline SVG): a funnel per journey, a bar per channel, the table."""
    sections = []
    for journey in report.journeys():
        steps = report.funnel(journey)
        sections.append(f"<section><h2>{html.escape(journey)}</h2>{_funnel_svg(steps)}</section>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r)) + "</tr>" for r in report.rows)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Durable Journeys report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
td:nth-child(-n+3), th:nth-child(-n+3), td:last-child {{ text-align: left; }}
svg text {{ font-family: system-ui, sans-serif; }}
</style></head>
<body>
<h1>Durable Journeys: per-step report</h1>
<p>{html.escape(_period(report))}</p>
{"".join(sections) or "<p>No messages in this period.</p>"}
{_experiments_html(report)}
<section><h2>By channel</h2>{_channel_svg(report.channels())}</section>
<section><h2>Every step and channel</h2><table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></section>
</body></html>
"""


RENDERERS = {"table": render_table, "csv": render_csv, "json": render_json, "html": render_html}


def render(report: Report, fmt: str) -> str:
    """The report in ``fmt`` (table, csv, json or html)."""
    return RENDERERS[fmt](report)
