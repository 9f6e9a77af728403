"""Errors the app-facing API raises."""

from __future__ import annotations

from pydantic import ValidationError

from providers import JourneysError


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
        """Turn a pydantic error into one line per field."""
        return cls(
            what,
            [f"{'.'.join(str(p) for p in e['loc']) or what}: {e['msg']}" for e in exc.errors()],
        )


class JourneyNotFound(JourneysError, LookupError):
    """No journey with that id exists."""
