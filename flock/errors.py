"""The project's exceptions: every error a user can cause is one of these."""

from __future__ import annotations


class ScenarioError(ValueError):
    """A scenario (file, override or argument) is invalid.

    The message always says where (file, key path), what was received and what
    was expected, e.g.
    ``scenarios/x.yaml: rules.separation.radius: expected a number > 0, got -2``.
    Several problems found at once are joined one per line.
    """

    def __init__(self, message: str, *, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or corrupt; the message names the file and the problem."""
