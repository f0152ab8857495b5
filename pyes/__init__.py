"""pyes: event sourcing that lives inside PostgreSQL, with a thin Python layer."""

from .aggregate import REWIND_TYPE, Aggregate, Repository, Rewound, handles
from .commands import Command, CommandContext, CommandHandler, Handled, InvalidCommand
from .errors import (
    ConcurrencyError,
    DuplicateEvent,
    EventTooLarge,
    ImmutableEvent,
    InvalidArgument,
    InvalidBatch,
    InvalidCheckpoint,
    InvalidEvent,
    InvalidEventId,
    InvalidEventType,
    InvalidExpectedVersion,
    InvalidInput,
    InvalidRewind,
    InvalidSnapshotVersion,
    InvalidStreamId,
    PyesError,
    StreamDeleteForbidden,
    StreamNotFound,
    TransactionConflict,
    WrongExpectedVersion,
)
from .records import AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from .serialization import SerializationError
from .store import EventStore, retry_transaction
from .typed import EventRegistry, GenericEvent, event, registry

__version__ = "0.1.0"

__all__ = [
    "REWIND_TYPE",
    "Aggregate",
    "AppendResult",
    "Command",
    "CommandContext",
    "CommandHandler",
    "ConcurrencyError",
    "DuplicateEvent",
    "EventRegistry",
    "EventStore",
    "EventTooLarge",
    "ExpectedVersion",
    "GenericEvent",
    "Handled",
    "ImmutableEvent",
    "InvalidArgument",
    "InvalidBatch",
    "InvalidCheckpoint",
    "InvalidCommand",
    "InvalidEvent",
    "InvalidEventId",
    "InvalidEventType",
    "InvalidExpectedVersion",
    "InvalidInput",
    "InvalidRewind",
    "InvalidSnapshotVersion",
    "InvalidStreamId",
    "NewEvent",
    "PyesError",
    "RecordedEvent",
    "Repository",
    "Rewound",
    "SerializationError",
    "StreamDeleteForbidden",
    "StreamNotFound",
    "TransactionConflict",
    "WrongExpectedVersion",
    "event",
    "handles",
    "registry",
    "retry_transaction",
]
