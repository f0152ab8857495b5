"""Exceptions of pyes, mapped from SQLSTATE codes (never from message text).

Every error that the SQL functions raise has its own SQLSTATE, listed in docs/errors.md.
:func:`translate` turns a psycopg error into the matching class below; the original error
stays available as ``__cause__`` and its DETAIL and HINT as attributes.
"""

from __future__ import annotations

import json
import re

import psycopg
from psycopg import errors as pgerrors


class PyesError(Exception):
    """Base class of every pyes error."""

    sqlstate: str | None = None

    def __init__(self, message: str, *, detail: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.message]
        if self.detail:
            parts.append(f"DETAIL: {self.detail}")
        if self.hint:
            parts.append(f"HINT: {self.hint}")
        return "\n".join(parts)


class ConcurrencyError(PyesError):
    """Another writer got there first; reload and decide again."""


class WrongExpectedVersion(ConcurrencyError):
    """PE001: the stream is not at the version the append expected."""

    sqlstate = "PE001"

    def __init__(self, message: str, *, detail: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, detail=detail, hint=hint)
        self.stream_id: str | None = None
        self.actual: int | None = None
        self.expected: str | None = None
        # The DETAIL of PE001 has a documented, stable form (docs/errors.md):
        #   stream "<json string>" is at version <n>; the append expected <expectation>.
        match = re.fullmatch(r'stream (".*") is at version (\d+); the append expected (.*)\.', detail or "")
        if match:
            self.stream_id = json.loads(match.group(1))
            self.actual = int(match.group(2))
            self.expected = match.group(3)


class DuplicateEvent(PyesError):
    """PE002: an event id is already stored, and the append is not an exact retry."""

    sqlstate = "PE002"


class StreamNotFound(PyesError):
    """PE003: the stream has no events yet."""

    sqlstate = "PE003"


class InvalidInput(PyesError):
    """Bad input: nothing was written. Subclasses name what was wrong."""


class InvalidStreamId(InvalidInput):
    sqlstate = "PE101"


class InvalidEventType(InvalidInput):
    sqlstate = "PE102"


class InvalidEvent(InvalidInput):
    """An event, its data or its metadata is not a JSON object, or has an unknown key."""

    sqlstate = "PE103"


class EventTooLarge(InvalidInput):
    sqlstate = "PE104"


class InvalidExpectedVersion(InvalidInput):
    sqlstate = "PE105"


class InvalidEventId(InvalidInput):
    """An id, correlation id or causation id that is not a uuid."""

    sqlstate = "PE106"


class InvalidBatch(InvalidInput):
    """Events that are not a JSON array, or an empty one."""

    sqlstate = "PE107"


class InvalidCheckpoint(InvalidInput):
    sqlstate = "PE108"


class InvalidArgument(InvalidInput):
    """Any other argument out of range (max_count, direction, category, type filter...)."""

    sqlstate = "PE109"


class InvalidSnapshotVersion(InvalidInput):
    """PE110: a snapshot for a version the stream has not reached (or below 1)."""

    sqlstate = "PE110"


class InvalidRewind(InvalidInput):
    """PE111: a rewind target outside 0 .. current version - 1."""

    sqlstate = "PE111"


class ImmutableEvent(PyesError):
    """PE201: events cannot be updated, deleted or truncated."""

    sqlstate = "PE201"


class StreamDeleteForbidden(PyesError):
    """PE202: stream rows cannot be deleted."""

    sqlstate = "PE202"


class SubscriptionNotFound(PyesError):
    """PE401: no subscription has this name."""

    sqlstate = "PE401"


class SubscriptionConflict(PyesError):
    """PE402: the subscription exists with another definition (categories, types, partitions)."""

    sqlstate = "PE402"


class InvalidSubscriptionArgument(InvalidInput):
    """PE403: a subscription name, member id, filter, partition count, lease or start that is
    out of range."""

    sqlstate = "PE403"


class LeaseLost(ConcurrencyError):
    """PE404: the member no longer holds the partition whose checkpoint it tried to save."""

    sqlstate = "PE404"


class ParkedEventNotFound(PyesError):
    """PE405: no such parked event in the subscription (or no such event to park)."""

    sqlstate = "PE405"


class InvalidReplayWindow(InvalidInput):
    """PE406: a replay window whose start is after its end."""

    sqlstate = "PE406"


class CaptureError(PyesError):
    """Base class of the errors of capture (PE5xx): history of existing tables."""


class NoPrimaryKey(CaptureError, InvalidInput):
    """PE501: a table without a primary key cannot be captured."""

    sqlstate = "PE501"


class TableNotCapturable(CaptureError, InvalidInput):
    """PE502: a view, a temporary table, a partition, or a table of pyes or the catalogs."""

    sqlstate = "PE502"


class InvalidCaptureOption(CaptureError, InvalidInput):
    """PE503: an excluded column, a stream prefix, a batch size or a moment is wrong."""

    sqlstate = "PE503"


class TableNotCaptured(CaptureError):
    """PE504: the table is not captured (or never was)."""

    sqlstate = "PE504"


class InvalidCaptureSetting(CaptureError):
    """PE505: the session setting pyes.correlation_id is not a uuid; the change is refused."""

    sqlstate = "PE505"


class InvalidRowKey(CaptureError, InvalidInput):
    """PE506: a row key that does not match the table's primary key columns."""

    sqlstate = "PE506"


class NothingToRestore(CaptureError):
    """PE507: the row had no state at the moment to restore (absent, deleted, not imported)."""

    sqlstate = "PE507"


class RestoreNeedsReason(CaptureError, InvalidInput):
    """PE508: a restore without a reason or an actor."""

    sqlstate = "PE508"


class CapturedTruncate(CaptureError):
    """PE509: TRUNCATE on a captured table."""

    sqlstate = "PE509"


# -- schema evolution (PE6xx) ----------------------------------------------------------------


class EventSchemaViolation(InvalidInput):
    """PE601/PE602: an appended event does not fit the registered schema of its type and
    version; nothing was appended."""


class MissingEventField(EventSchemaViolation):
    """PE601: a field the schema requires is missing from the event data."""

    sqlstate = "PE601"


class WrongFieldType(EventSchemaViolation):
    """PE602: a field of the event data has another JSON type than the schema says."""

    sqlstate = "PE602"


class InvalidEventSchema(InvalidInput):
    """PE603: a schema outside the supported JSON Schema subset, or a bad version or source."""

    sqlstate = "PE603"


class InvalidUpcaster(InvalidInput):
    """PE604: an upcaster that cannot be registered (function signature, version, rename)."""

    sqlstate = "PE604"


class UpcasterMissing(PyesError):
    """PE605: stored events of a version below the current one, with no step to the next."""

    sqlstate = "PE605"


class UpcasterFailed(PyesError):
    """PE606: an upcaster returned something other than a JSON object."""

    sqlstate = "PE606"


class SchemaNotFound(PyesError):
    """PE607: no such event schema or upcaster to unregister."""

    sqlstate = "PE607"


class SchemaConflict(PyesError):
    """PE608: that version already has another schema (or that step another upcaster)."""

    sqlstate = "PE608"


class TransactionConflict(ConcurrencyError):
    """40001 or 40P01: run the whole transaction again (see :func:`pyes.retry_transaction`)."""


# -- projections (PE3xx) ---------------------------------------------------------------------


class InlineProjectionFailed(PyesError):
    """PE301: an inline projection's handler failed, so the append was not made."""

    sqlstate = "PE301"


class ProjectionNotFound(PyesError):
    """PE302: no projection with that name (and version) is registered."""

    sqlstate = "PE302"


class ProjectionExists(PyesError):
    """PE303: that projection version is registered already."""

    sqlstate = "PE303"


class InvalidProjection(InvalidInput):
    """PE304: a projection definition that cannot work (mode, handler, tables...)."""

    sqlstate = "PE304"


class ProjectionBusy(PyesError):
    """PE305: another session is processing the projection, or appends could not pause."""

    sqlstate = "PE305"


class ProjectionNotCaughtUp(PyesError):
    """PE306: a version cannot become current before it has caught up."""

    sqlstate = "PE306"


class ProjectionIsCurrent(PyesError):
    """PE307: the current version cannot be dropped while other versions exist."""

    sqlstate = "PE307"


class TemporalProjectionError(PyesError):
    """PE308: a projection cannot be built as of that time into that schema."""

    sqlstate = "PE308"


class ProjectionFailed(PyesError):
    """A projection's handler failed: it stopped at that event (state failed)."""


_BY_SQLSTATE: dict[str, type[PyesError]] = {
    cls.sqlstate: cls
    for cls in (
        WrongExpectedVersion, DuplicateEvent, StreamNotFound, InvalidStreamId, InvalidEventType,
        InvalidEvent, EventTooLarge, InvalidExpectedVersion, InvalidEventId, InvalidBatch,
        InvalidCheckpoint, InvalidArgument, InvalidSnapshotVersion, InvalidRewind, ImmutableEvent,
        StreamDeleteForbidden,
        SubscriptionNotFound, SubscriptionConflict, InvalidSubscriptionArgument, LeaseLost,
        ParkedEventNotFound, InvalidReplayWindow,
        InlineProjectionFailed, ProjectionNotFound, ProjectionExists, InvalidProjection, ProjectionBusy,
        ProjectionNotCaughtUp, ProjectionIsCurrent, TemporalProjectionError,
        NoPrimaryKey, TableNotCapturable, InvalidCaptureOption, TableNotCaptured, InvalidCaptureSetting,
        InvalidRowKey, NothingToRestore, RestoreNeedsReason, CapturedTruncate,
        MissingEventField, WrongFieldType, InvalidEventSchema, InvalidUpcaster, UpcasterMissing, UpcasterFailed,
        SchemaNotFound, SchemaConflict,
    )
    if cls.sqlstate
}
_RETRYABLE = {"40001", "40P01"}


def translate(error: psycopg.Error) -> Exception:
    """The pyes exception for a psycopg error, or the error itself if pyes has none for it."""
    state = error.sqlstate
    if state is None:
        return error
    cls: type[PyesError] | None = _BY_SQLSTATE.get(state)
    if cls is None and state in _RETRYABLE:
        cls = TransactionConflict
    if state == "23505" and error.diag.constraint_name == "events_event_id_key":
        # The same id inserted by a concurrent transaction while pyes.append ran (its own
        # check raises PE002 for ids stored before it started).
        cls = DuplicateEvent
    if cls is None:
        return error
    diag = error.diag
    exc = cls(diag.message_primary or str(error), detail=diag.message_detail, hint=diag.message_hint)
    exc.sqlstate = state
    return exc


def is_retryable(error: BaseException) -> bool:
    """True for errors after which running the whole transaction again can succeed."""
    if isinstance(error, TransactionConflict):
        return True
    return isinstance(error, (pgerrors.SerializationFailure, pgerrors.DeadlockDetected))
