"""Commands: validated before anything is written, decided by an aggregate, appended with
the loaded version as the expected version, and retried on a version conflict.

The command's id, type and sender, and the request's correlation id, go into every event's
metadata (and its ``correlation_id`` and ``causation_id`` columns), so that "which request
caused this change, and who sent it" is one query: ``pyes.read_correlation``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .aggregate import Aggregate, Repository
from .errors import PyesError, WrongExpectedVersion
from .records import AppendResult

A = TypeVar("A", bound=Aggregate)
C = TypeVar("C", bound="Command")

#: How many times :meth:`CommandHandler.handle` loads, decides and appends before it gives
#: up on version conflicts and raises the last WrongExpectedVersion.
DEFAULT_MAX_ATTEMPTS = 3
#: The most attempts a handler may be configured with: past that, contention is a design
#: problem that retrying would only hide.
MAX_ATTEMPTS_LIMIT = 10


class InvalidCommand(PyesError):
    """A command failed its validation; nothing was loaded or written."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, detail=f"field: {field}" if field else None)
        self.field = field


@dataclass(frozen=True, kw_only=True)
class Command:
    """Base class of commands (frozen dataclasses). Override :meth:`validate`."""

    command_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def validate(self) -> None:
        """Raise :class:`InvalidCommand` if the command cannot be carried out as given."""


@dataclass(frozen=True)
class CommandContext:
    """Who sends a command, and for which request."""

    actor: str | None = None
    correlation_id: uuid.UUID | None = None
    #: The message (an event, another command) that led to this command, if any.
    causation_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Handled(Generic[A]):
    aggregate: A
    result: AppendResult | None  # None when the decision raised no event
    attempts: int


class CommandHandler(Generic[A]):
    """Loads the aggregate, lets ``decide`` change it, saves its events; on a version
    conflict, reloads and decides again, up to ``max_attempts`` times in all."""

    def __init__(self, repository: Repository[A], *, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        if not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise ValueError(f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}")
        self.repository = repository
        self.max_attempts = max_attempts

    def handle(
        self,
        aggregate_id: str,
        command: C,
        decide: Callable[[A, C], Any],
        *,
        context: CommandContext | None = None,
    ) -> Handled[A]:
        command.validate()
        context = context or CommandContext()
        correlation_id = context.correlation_id or command.command_id
        metadata: dict[str, Any] = {
            "command_id": str(command.command_id),
            "command_type": type(command).__name__,
            "correlation_id": str(correlation_id),
        }
        if context.actor is not None:
            metadata["actor"] = context.actor
        if context.causation_id is not None:
            metadata["command_causation_id"] = str(context.causation_id)
        for attempt in range(1, self.max_attempts + 1):
            aggregate = self.repository.load(aggregate_id)
            decide(aggregate, command)
            try:
                result = self.repository.save(aggregate, metadata=metadata, correlation_id=correlation_id,
                                              causation_id=command.command_id)
            except WrongExpectedVersion:
                if attempt == self.max_attempts:
                    raise
                continue
            return Handled(aggregate, result, attempt)
        raise AssertionError("unreachable")
