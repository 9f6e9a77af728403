"""The operators' commands: ``journeys list``, ``inspect``, ``skip``, ``exit``, ``resend`` and ``report``."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Coroutine
from enum import StrEnum
from typing import Any

import typer

from durable_journeys.activities import KST
from durable_journeys.starter.cli_support import CONNECT, LOGS, STORE, command_settings, plain_typer, reads, run_command

operators_app = plain_typer("Operators' commands.")


@operators_app.command(epilog=reads(CONNECT, STORE, LOGS))
def inspect(workflow_id: str = typer.Argument(..., help="e.g. post-purchase:A-1001 or cart:c-42.")) -> None:
    """Print a journey's timeline: what was sent, when, why not, and operators' actions (who and why)."""
    from durable_journeys.starter.demo import format_timeline

    async def show(journeys: Any) -> None:
        timeline = await journeys.timeline(workflow_id)
        for line in format_timeline(timeline, clock=True):
            typer.echo(line)
        actions = [e for e in timeline if e.outcome.value == "operator"]
        typer.echo(f"  operator actions: {len(actions)}")

    raise typer.Exit(run_command(_with_journeys(show)))


def _with_journeys(action: Callable[[Any], Awaitable[None]]) -> Coroutine[Any, Any, None]:
    """Connect the facade from the settings, run ``action`` with it, close it."""
    from durable_journeys.starter.journeys import Journeys

    settings = command_settings()

    async def run() -> None:
        journeys = await Journeys.connect(settings, create_store=False)  # operators' commands make no store
        try:
            await action(journeys)
        finally:
            await journeys.close()

    return run()


OPERATOR = typer.Option(None, "--operator", "-o", help="Who acts (default: your login name).")
REASON = typer.Option(..., "--reason", "-r", help="Why; kept in the journey's timeline.")


def _operator(name: str | None) -> str:
    import getpass

    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise typer.BadParameter("who acts? pass --operator NAME") from None


@operators_app.command("list", epilog=reads(CONNECT, STORE, LOGS))
def list_journeys(
    customer: str | None = typer.Option(None, "--customer", help="One customer's journeys (CustomerId)."),
    journey: str | None = typer.Option(None, "--journey", help="One journey, e.g. cart or post-purchase."),
    stage: str | None = typer.Option(
        None, "--stage", help="At one stage (JourneyStage), e.g. waiting_for_delivery or waiting_for_engagement."
    ),
    ended: bool = typer.Option(False, "--ended", help="Ended journeys too, not only running ones."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="At most this many."),
) -> None:
    """List journeys by customer, journey and stage (Temporal's visibility; the query works in the UI too)."""
    from durable_journeys.starter.inputs import visibility_query

    query = visibility_query(customer_id=customer, journey=journey, stage=stage, running=not ended)

    async def show(journeys: Any) -> None:
        found = await journeys.list_journeys(
            customer_id=customer, journey=journey, stage=stage, running=not ended, limit=limit
        )
        typer.echo(f"query: {query}")
        rows = [("WORKFLOW ID", "JOURNEY", "STAGE", "CUSTOMER", "STATUS", "STARTED (KST)")]
        for j in found:
            started = j.started_at.astimezone(KST).strftime("%Y-%m-%d %H:%M") if j.started_at else "-"
            rows.append((j.workflow_id, j.journey, j.stage or "-", j.customer_id or "-", j.status, started))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        typer.echo(f"{len(found)} journey(s)")

    raise typer.Exit(run_command(_with_journeys(show)))


def _act(workflow_id: str, operator: str | None, reason: str, update: str) -> None:
    """Check an operator's action, then call ``update`` (``skip_wait`` or ``exit_journey``) and print its answer."""
    from durable_journeys.starter.inputs import operator_action

    who = _operator(operator)
    operator_action(workflow_id, who, reason)

    async def act(journeys: Any) -> None:
        typer.echo(await getattr(journeys, update)(workflow_id, operator=who, reason=reason))

    raise typer.Exit(run_command(_with_journeys(act)))


@operators_app.command("skip", epilog=reads(CONNECT, STORE, LOGS))
def skip(
    workflow_id: str = typer.Argument(..., help="The journey, e.g. post-purchase:A-1001."),
    operator: str | None = OPERATOR,
    reason: str = REASON,
    as_event: str | None = typer.Option(
        None, "--as", help="As if this event came instead, e.g. order.delivered (one the wait is for)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Act without asking (it says what it will do first)."),
) -> None:
    """End the wait a journey is in now (a timer, an event, a receipt); says first what that will do.

    Without --as the wait ends as if it had run out (a wait for delivery: the journey gives up);
    with --as order.delivered, as if the parcel had been delivered.
    """
    from durable_journeys.starter.inputs import operator_action

    who = _operator(operator)
    operator_action(workflow_id, who, reason, as_event=as_event)

    async def act(journeys: Any) -> None:
        info = await journeys.waiting(workflow_id)
        if info.waiting is None:
            typer.echo(f"{workflow_id} is not waiting now (it is sending, or has ended); nothing was done")
            raise typer.Exit(1)
        effect = f"as if {as_event} came" if as_event else info.on_skip
        typer.echo(f"{workflow_id} waits: {info.waiting}. A skip: {effect}.")
        if not as_event and info.events:
            typer.echo(f"  (to go on as if an event came instead: --as {' | --as '.join(info.events)})")
        if not yes:
            if not sys.stdin.isatty():
                typer.echo("not skipped: add --yes to act without a terminal to confirm at", err=True)
                raise typer.Exit(2)
            if not typer.confirm("Skip it?"):
                raise typer.Exit(1)
        typer.echo(await journeys.skip_wait(workflow_id, operator=who, reason=reason, as_event=as_event))

    raise typer.Exit(run_command(_with_journeys(act)))


@operators_app.command("exit", epilog=reads(CONNECT, STORE, LOGS))
def exit_journey(
    workflow_id: str = typer.Argument(..., help="The journey, e.g. cart:c-42."),
    operator: str | None = OPERATOR,
    reason: str = REASON,
) -> None:
    """End a journey: nothing more is sent to the customer by it."""
    _act(workflow_id, operator, reason, "exit_journey")


@operators_app.command("resend", epilog=reads(CONNECT, STORE, LOGS))
def resend(
    workflow_id: str = typer.Argument(..., help="The journey, e.g. post-purchase:A-1001."),
    step: str = typer.Argument(..., help="A step it sent (journeys inspect lists them), e.g. shipping_started."),
    channel: str | None = typer.Option(None, "--channel", "-c", help="One of the step's channels (default: as sent)."),
    operator: str | None = OPERATOR,
    reason: str = REASON,
) -> None:
    """Send a step again under a new key linked to the first (consent and quiet hours still apply)."""
    from durable_journeys.starter.inputs import operator_action

    who = _operator(operator)
    operator_action(workflow_id, who, reason, step=step, channel=channel)

    async def act(journeys: Any) -> None:
        typer.echo(await journeys.resend(workflow_id, step, channel=channel, operator=who, reason=reason))

    raise typer.Exit(run_command(_with_journeys(act)))


class ReportFormat(StrEnum):
    """How ``journeys report`` prints."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    HTML = "html"


def _when(value: str, option: str, now: Any) -> Any:
    """An ISO date or time (KST when it has no offset), or a duration back from now: 7d, 12h, 30m."""
    from datetime import datetime, timedelta

    text = value.strip()
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[-1:] in units and text[:-1].isdigit():
        return now - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: use a date (2026-11-01), a time (2026-11-01T09:00) or 7d/12h/30m", param_hint=option
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=KST)


REPORT_FORMAT = typer.Option(ReportFormat.TABLE, "--format", help="table, csv, json or html.")


@operators_app.command("report", epilog=reads(STORE, LOGS))
def report(
    journey: str | None = typer.Option(None, "--journey", help="One journey (default: every journey)."),
    since: str = typer.Option("30d", "--since", help="From: a date, a time (KST) or a duration back, e.g. 7d."),
    until: str | None = typer.Option(None, "--until", help="Until (default: now)."),
    window: int = typer.Option(7, "--window", min=1, max=90, help="Attribution window for conversions, days."),
    fmt: ReportFormat = REPORT_FORMAT,
    output: str | None = typer.Option(None, "--output", "-o", help="Write to this file (html: report.html)."),
    experiments: bool = typer.Option(
        False, "--experiments", help="Only the experiments: a row per variant with its test (csv, table, json)."
    ),
) -> None:
    """Per journey, step and channel: sent, delivered, fallback, skipped, opened, clicked, converted, revenue, cost.

    Then per experiment and variant (and the holdout): customers, conversions, revenue, cost and
    a verdict. Message prices: JOURNEYS_MESSAGE_PRICES.
    """
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from durable_journeys.starter.report import journey_report, render, render_experiments_csv

    settings = command_settings()
    now = datetime.now(UTC)
    start, end = _when(since, "--since", now), _when(until, "--until", now) if until else now
    if start >= end:
        raise typer.BadParameter("must be before --until (or now)", param_hint="--since")

    async def build() -> None:
        from durable_journeys.starter.database import open_store

        store = await open_store(settings, create=False)
        try:
            made = await journey_report(
                store,
                since=start,
                until=end,
                attribution=timedelta(days=window),
                journey=journey,
                prices=settings.message_prices,
            )
        finally:
            await store.close()
        if experiments:
            made = made.model_copy(update={"rows": []})
        text = render_experiments_csv(made) if experiments and fmt is ReportFormat.CSV else render(made, fmt.value)
        target = output or ("report.html" if fmt is ReportFormat.HTML else None)
        if target is None:
            typer.echo(text, nl=False)
            return
        Path(target).write_text(text, encoding="utf-8")
        typer.echo(f"wrote {target} ({len(made.rows)} rows)")

    raise typer.Exit(run_command(build()))


def _weights(text: str) -> dict[str, int]:
    """``12h=1,24h=3`` as a mapping (``ExperimentChange`` checks the names and weights)."""
    weights: dict[str, int] = {}
    for part in text.split(",")[:21]:  # one more than allowed: the model refuses it
        name, sep, value = part.strip().partition("=")
        if not sep or not value.strip().isdigit() or len(value.strip()) > 6:
            raise typer.BadParameter(
                f"{part.strip()[:40]!r}: use variant=weight, e.g. 12h=1,24h=3 (weights 0-10000)", param_hint="--weights"
            )
        weights[name.strip()] = int(value)
    return weights


@operators_app.command("experiment", epilog=reads(STORE, LOGS))
def experiment(
    name: str = typer.Argument(..., help="The experiment, e.g. cart_coupon_timing."),
    weights: str | None = typer.Option(None, "--weights", help="New weights for new customers, e.g. 12h=1,24h=3."),
    stop: bool = typer.Option(False, "--stop", help="Stop: new customers take the first variant, uncounted."),
    winner: str | None = typer.Option(None, "--winner", help="Send this variant to everyone from now on."),
    resume: bool = typer.Option(False, "--resume", help="Run again with the journey's own weights."),
    operator: str | None = OPERATOR,
    reason: str | None = typer.Option(None, "--reason", "-r", help="Why; kept with the setting."),
) -> None:
    """Show an experiment's live setting, or change it without a deploy (journeys read it at their split).

    A journey that already took its variant keeps it; customers assigned before keep theirs
    under new weights.
    """
    from pydantic import TypeAdapter, ValidationError

    from durable_journeys.activities.contracts import Name64
    from durable_journeys.starter.errors import InvalidInput
    from durable_journeys.starter.inputs import ExperimentChange, apply_experiment_change

    chosen = [
        flag
        for flag, on in (("--weights", weights), ("--stop", stop), ("--winner", winner), ("--resume", resume))
        if on
    ]
    if len(chosen) > 1:
        raise typer.BadParameter(f"one change at a time, not {' and '.join(chosen)}", param_hint=chosen[1])
    options = {"experiment": "NAME", "weights": "--weights", "winner": "--winner", "operator": "--operator"}
    change: ExperimentChange | None = None
    try:
        if chosen:
            change = ExperimentChange.of(
                name,
                operator=_operator(operator),
                reason=reason or "",
                weights=_weights(weights) if weights is not None else None,
                winner=winner,
                stop=stop,
            )
        else:
            TypeAdapter(Name64).validate_python(name)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        whole = next((f for f in ("weights", "winner") if message.startswith(f"{f}:")), "experiment")
        field = str(error["loc"][0]) if error["loc"] else whole
        hint = options.get(field, "--reason")
        if hint in ("NAME", "--weights", "--winner"):
            message += " (names: 1-64 letters, digits and _.-; weights 0-10000, at most 20)"
        raise typer.BadParameter(message, param_hint=hint) from None
    settings = command_settings()  # after every check of the arguments

    async def act() -> None:
        from durable_journeys.starter.database import open_store

        store = await open_store(settings, create=False)
        try:
            if change is None:
                setting = await store.experiment_setting(name)
            else:
                try:
                    setting = await apply_experiment_change(store, change)
                except InvalidInput as exc:
                    raise typer.BadParameter(
                        exc.problems[0], param_hint="--winner" if winner else "--weights"
                    ) from None
        finally:
            await store.close()
        if setting is None:
            typer.echo(f"{name}: running as the journey declares it (no live setting)")
            return
        what = {
            "running": f"running with weights {setting.weights}"
            if setting.weights
            else "running (the journey's weights)",
            "stopped": "stopped: new customers take the first variant",
            "winner": f"winner {setting.winner}: every customer takes it from now on",
        }[setting.state]
        when = setting.changed_at.astimezone(KST).strftime("%Y-%m-%d %H:%M KST")
        typer.echo(f"{name}: {what} (set by {setting.changed_by} at {when}: {setting.reason})")

    raise typer.Exit(run_command(act()))
