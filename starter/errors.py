"""Errors the app-facing API raises."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from durable_journeys.providers import JourneysError

MAX_PROBLEMS = 5
MAX_PROBLEM_CHARS = 200
MAX_LOC_PARTS = 6


class InvalidInput(JourneysError, ValueError):
    """Input to a journey is invalid; nothing was started or signalled.

    Attributes:
        problems: one ``"field: message"`` line per problem.
    """

    def __init__(self, what: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"invalid {what}: " + "; ".join(problems))

    @classmethod
    def from_validation(cls, what: str, exc: ValidationError) -> InvalidInput:
        """Turn a pydantic error into one short line per field (the first few fields only).

        Neither the input's values nor the schema are echoed: a message stays short whatever
        was sent, and carries no personal data.
        """
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        problems = [
            f"{'.'.join(str(p) for p in e['loc'][:MAX_LOC_PARTS]) or what}: {e['msg'].removeprefix('Value error, ')}"[
                :MAX_PROBLEM_CHARS
            ]
            for e in errors[:MAX_PROBLEMS]
        ]
        if len(errors) > MAX_PROBLEMS:
            problems.append(f"... and {len(errors) - MAX_PROBLEMS} more")
        return cls(what, problems)


def all_problems(*checks: tuple[str, Callable[[], object]]) -> list[object]:
    """Run every ``(what, parse)`` check and return the parsed values, or raise one error with every problem.

    A caller who sent a bad order and a bad customer hears of both at once.

    Raises:
        InvalidInput: ``invalid {what}: ...`` for one failing check; with more, each problem prefixed by its ``what``.
    """
    values: list[object] = []
    failed: list[tuple[str, InvalidInput]] = []
    for what, parse in checks:
        try:
            values.append(parse())
        except InvalidInput as exc:
            failed.append((what, exc))
    if len(failed) == 1:
        raise failed[0][1]
    if failed:
        raise InvalidInput(" and ".join(w for w, _ in failed), [f"{w}: {p}" for w, exc in failed for p in exc.problems])
    return values


class JourneyNotFound(JourneysError, LookupError):
    """No journey with that id exists."""


class ActionRefused(JourneysError, ValueError):
    """A running journey refused an operator's action; the message says why, in one line.

    Skip when not waiting, resend of a step never sent, anything on an ended journey.
    """
