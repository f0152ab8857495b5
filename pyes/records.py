"""The values that go into the store and come out of it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any


class ExpectedVersion(str, Enum):
    """What the stream must look like for an append to go ahead. An ``int`` N means "exactly
    at version N" (0: the stream has no events yet)."""

    ANY = "any"
    NO_STREAM = "no_stream"
    STREAM_EXISTS = "stream_exists"


Expected = ExpectedVersion | int | str


def expected_text(expected: Expected) -> str:
    """The text form that ``pyes.append`` takes. Unknown values go through unchanged so that
    the database refuses them with its own error (PE105), as it would for any client."""
    if isinstance(expected, ExpectedVersion):
        return expected.value
    if isinstance(expected, bool):  # bool is an int; True is no version
        return str(expected)
    if isinstance(expected, int):
        return str(expected)
    return expected


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. Its id is made here, so that retrying the same append is safe."""

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    schema_version: int = 1
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None

    def to_json(self, *, ids_as_text: bool = True) -> dict[str, Any]:
        """The event object that ``pyes.append`` takes. With ``ids_as_text=False`` the ids stay
        ``uuid.UUID`` values, for a JSON writer that writes them as text itself
        (:func:`pyes.jsonio.dumps` does, in C: a tenth of the cost of ``str()``)."""
        text = str if ids_as_text else _same
        out: dict[str, Any] = {
            "id": text(self.id),
            "type": self.type,
            "data": self.data,
            "metadata": self.metadata,
            "schema_version": self.schema_version,
        }
        if self.correlation_id is not None:
            out["correlation_id"] = text(self.correlation_id)
        if self.causation_id is not None:
            out["causation_id"] = text(self.causation_id)
        return out


def _same(value: uuid.UUID) -> uuid.UUID:
    return value


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored. ``checkpoint`` is its place in the global order: pass it back as
    ``after`` to :meth:`EventStore.read_all` or :meth:`EventStore.read_category`."""

    position: int
    event_id: uuid.UUID
    stream_id: str
    category: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    recorded_at: datetime
    transaction_id: int
    checkpoint: str


# The columns of RecordedEvent, in order, as selected from the pyes.read_* functions.
RECORDED_COLUMNS = (
    "position, event_id, stream_id, category, version, type, schema_version, data, metadata, "
    "correlation_id, causation_id, recorded_at, transaction_id::text::bigint, checkpoint"
)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The stream's version after the append, and each appended event's global position."""

    stream_version: int
    positions: tuple[int, ...]
