"""Errors the app-facing API raises."""

from __future__ import annotations

from pydantic import ValidationError

from providers import JourneysError

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
            f"{'.'.join(str(p) for p in e['loc'][:MAX_LOC_PARTS]) or what}: {e['msg']}"[:MAX_PROBLEM_CHARS]
            for e in errors[:MAX_PROBLEMS]
        ]
        if len(errors) > MAX_PROBLEMS:
            problems.append(f"... and {len(errors) - MAX_PROBLEMS} more")
        return cls(what, problems)


class JourneyNotFound(JourneysError, LookupError):
    """No journey with that id exists."""


class ActionRefused(JourneysError, ValueError):
    """A running journey refused an operator's action; the message says why, in one line.

    Skip when not waiting, resend of a step never sent, anything on an ended journey.
    """
