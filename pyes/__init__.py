"""pyes: event sourcing that lives inside PostgreSQL, with a thin Python layer."""

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
    InvalidStreamId,
    PyesError,
    StreamDeleteForbidden,
    StreamNotFound,
    TransactionConflict,
    WrongExpectedVersion,
)
from .records import AppendResult, ExpectedVersion, NewEvent, RecordedEvent
from .store import EventStore, retry_transaction

__version__ = "0.1.0"

__all__ = [
    "AppendResult",
    "ConcurrencyError",
    "DuplicateEvent",
    "EventStore",
    "EventTooLarge",
    "ExpectedVersion",
    "ImmutableEvent",
    "InvalidArgument",
    "InvalidBatch",
    "InvalidCheckpoint",
    "InvalidEvent",
    "InvalidEventId",
    "InvalidEventType",
    "InvalidExpectedVersion",
    "InvalidInput",
    "InvalidStreamId",
    "NewEvent",
    "PyesError",
    "RecordedEvent",
    "StreamDeleteForbidden",
    "StreamNotFound",
    "TransactionConflict",
    "WrongExpectedVersion",
    "retry_transaction",
]
