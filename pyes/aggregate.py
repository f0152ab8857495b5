"""Aggregates and their repository: state rebuilt from events (through snapshots when there
are some), pending events saved with the loaded version as the expected version, time
travel, and undo by rewinding.

An aggregate declares its state as annotated class attributes with defaults, and one
handler per event class::

    class BankAccount(Aggregate):
        owner: str = ""
        balance: Decimal = Decimal(0)

        def deposit(self, amount: Decimal) -> None:
            self.raise_event(Deposited(amount))

        @handles(Deposited)
        def _deposited(self, event: Deposited) -> None:
            self.balance += event.amount

Snapshots store those attributes with :mod:`pyes.serialization`; bump
``snapshot_schema_version`` when their shape changes and older snapshots are ignored.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

import psycopg

from .errors import translate
from .records import AppendResult
from .serialization import decode, encode
from .store import EventStore
from .typed import EventRegistry, GenericEvent
from .typed import registry as default_registry

REWIND_TYPE = "$rewind"
_PAGE = 1000
# One page of a fold: only the columns it needs (metadata only for rewinds), from the view
# every read function selects from (so events come upcast, see docs/schema-evolution.md).
# The view, not pyes.read_stream: a function returning rows copies each of them, all columns,
# into a result set before the query sees it (1.7 ms of server time for a page of 1,000
# events, against 0.7 ms from the view). pyes.validate_stream_id in FROM runs once per page
# and raises PE101 for an id no stream can have, as pyes.read_stream would.
_LOAD_PAGE = (
    "SELECT e.version, e.type, e.schema_version, e.data, CASE WHEN e.type = '$rewind' THEN e.metadata END"
    " FROM pyes.validate_stream_id(%(stream)s) AS checked, pyes.recorded_events e"
    " WHERE e.stream_id = %(stream)s AND e.version >= %(from)s ORDER BY e.version LIMIT %(max)s"
)

E = TypeVar("E")
A = TypeVar("A", bound="Aggregate")
Handler = Callable[[Any, Any], None]


def handles(event_class: type[E]) -> Callable[[Callable[[A, E], None]], Callable[[A, E], None]]:
    """Mark a method as the handler that changes the state for ``event_class``."""

    def mark(method: Callable[[A, E], None]) -> Callable[[A, E], None]:
        method._pyes_handles = event_class  # type: ignore[attr-defined]
        return method

    return mark


@dataclass(frozen=True)
class Rewound:
    """A ``$rewind`` event as an aggregate sees it: the state is as it was at ``to_version``."""

    to_version: int
    reason: str
    actor: str


class Aggregate:
    """Base class of aggregates. Subclasses declare state attributes and handlers."""

    category: ClassVar[str] = ""
    aggregate_type: ClassVar[str] = ""
    snapshot_schema_version: ClassVar[int] = 1
    _handlers: ClassVar[dict[type, Handler]] = {}
    _state_hints: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Defaults from the class name; a subclass of a concrete aggregate keeps its parent's.
        if not cls.category:
            cls.category = cls.__name__.lower()
        if not cls.aggregate_type:
            cls.aggregate_type = cls.__name__
        handlers: dict[type, Handler] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                event_class = getattr(value, "_pyes_handles", None)
                if event_class is not None:
                    handlers[event_class] = value
        cls._handlers = handlers
        hints = typing.get_type_hints(cls)
        names = [n for k in reversed(cls.__mro__) if issubclass(k, Aggregate) and k is not Aggregate
                 for n in vars(k).get("__annotations__", {})]
        cls._state_hints = {
            name: hints[name] for name in dict.fromkeys(names)
            if not name.startswith("_") and typing.get_origin(hints[name]) is not ClassVar
        }

    def __init__(self, id: str) -> None:
        self.id = id
        #: The version of the stream this state was built from (0: no events yet).
        self.version = 0
        self._pending: list[Any] = []
        for name in self._state_hints:
            setattr(self, name, copy.deepcopy(getattr(type(self), name, None)))

    @property
    def stream_id(self) -> str:
        return f"{self.category}-{self.id}"

    @property
    def pending_events(self) -> tuple[Any, ...]:
        """Events raised since the aggregate was loaded or saved, not yet stored."""
        return tuple(self._pending)

    def raise_event(self, event: Any) -> None:
        """Apply a new event to the state and keep it for the next save."""
        self.apply(event)
        self._pending.append(event)

    def apply(self, event: Any) -> None:
        """Change the state for one event. Events without a handler (including events of
        types no class is registered for) leave the state as it is."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(self, event)

    def snapshot_state(self) -> dict[str, Any]:
        return {name: encode(getattr(self, name)) for name in self._state_hints}

    def restore_state(self, state: Mapping[str, Any]) -> None:
        for name, hint in self._state_hints.items():
            if name in state:
                setattr(self, name, decode(state[name], hint))
            else:  # a field added since the snapshot: its default
                setattr(self, name, copy.deepcopy(getattr(type(self), name, None)))

    def _copy_state_from(self, other: Aggregate) -> None:
        for name in self._state_hints:
            setattr(self, name, getattr(other, name))


class Repository(Generic[A]):
    """Loads and saves one kind of aggregate.

    ``snapshot_every=N`` saves a snapshot, in the same transaction as the append, whenever a
    save crosses a multiple of N events; :meth:`snapshot` takes one on demand.
    """

    def __init__(
        self,
        store: EventStore,
        aggregate_class: type[A],
        *,
        registry: EventRegistry = default_registry,
        snapshot_every: int | None = None,
    ) -> None:
        if snapshot_every is not None and snapshot_every < 1:
            raise ValueError("snapshot_every must be at least 1")
        self.store = store
        self.aggregate_class = aggregate_class
        self.registry = registry
        self.snapshot_every = snapshot_every

    def stream_id(self, aggregate_id: str) -> str:
        return f"{self.aggregate_class.category}-{aggregate_id}"

    @contextmanager
    def _conn(self, conn: psycopg.Connection[Any] | None) -> Iterator[psycopg.Connection[Any]]:
        if conn is not None:
            yield conn
        else:
            with self.store.connection() as own:
                yield own

    # -- loading ---------------------------------------------------------------------------

    def load(
        self,
        aggregate_id: str,
        *,
        version: int | None = None,
        at: datetime | None = None,
        use_snapshots: bool = True,
        conn: psycopg.Connection[Any] | None = None,
    ) -> A:
        """The aggregate as of now, as of stream ``version``, or as of the moment ``at`` (the
        state after the last event recorded at or before it). A stream with no events gives
        a fresh aggregate at version 0."""
        with self._conn(conn) as c:
            if at is not None:
                at_version = self.store.stream_version_at(self.stream_id(aggregate_id), at, conn=c)
                version = at_version if version is None else min(version, at_version)
            return self._load(aggregate_id, version, use_snapshots, c)

    def _load(self, aggregate_id: str, version: int | None, use_snapshots: bool, conn: psycopg.Connection[Any]) -> A:
        aggregate = self.aggregate_class(aggregate_id)
        stream = aggregate.stream_id
        if version == 0:
            return aggregate
        if use_snapshots:
            snapshot = self.store.load_snapshot(stream, aggregate.aggregate_type, aggregate.snapshot_schema_version,
                                                max_version=version, conn=conn)
            if snapshot is not None:
                aggregate.restore_state(snapshot[1])
                aggregate.version = snapshot[0]
        while version is None or aggregate.version < version:
            try:  # only the columns a fold needs: see _LOAD_PAGE
                rows = conn.execute(_LOAD_PAGE, {"stream": stream, "from": aggregate.version + 1, "max": _PAGE}).fetchall()
            except psycopg.Error as error:
                raise translate(error) from error
            for row in rows:
                if version is not None and row[0] > version:
                    return aggregate
                self._apply(aggregate, row, use_snapshots, conn)
            if len(rows) < _PAGE:
                break
        return aggregate

    def _apply(self, aggregate: A, row: tuple[Any, ...], use_snapshots: bool, conn: psycopg.Connection[Any]) -> None:
        event_version, event_type, schema_version, data, metadata = row
        if event_type == REWIND_TYPE:
            target = data.get("to_version")
            # pyes.append refuses any other $rewind (PE111); this guards against data that
            # was written around it, since a target at or after the event would never end.
            if not isinstance(target, int) or not 0 <= target < event_version:
                raise ValueError(f"{aggregate.stream_id} v{event_version}: $rewind to {target!r} is not in its past")
            aggregate._copy_state_from(self._load(aggregate.id, target, use_snapshots, conn))
            aggregate.apply(Rewound(target, str(metadata.get("reason", "")), str(metadata.get("actor", ""))))
        else:
            aggregate.apply(self.registry.decode_data(event_type, schema_version, data))
        aggregate.version = event_version

    # -- saving ----------------------------------------------------------------------------

    def save(
        self,
        aggregate: A,
        *,
        metadata: Mapping[str, Any] | None = None,
        correlation_id: Any = None,
        causation_id: Any = None,
        snapshot: bool = False,
        conn: psycopg.Connection[Any] | None = None,
    ) -> AppendResult | None:
        """Append the pending events with the loaded version as the expected version (a
        :class:`~pyes.errors.WrongExpectedVersion` if someone else appended first), and a
        snapshot if asked for or due, in one transaction. None if nothing was pending."""
        pending = aggregate.pending_events
        if not pending:
            if snapshot:
                self.snapshot(aggregate, conn=conn)
            return None
        events = [self.registry.to_new_event(event, metadata=metadata, correlation_id=correlation_id,
                                             causation_id=causation_id) for event in pending]
        # The append expects the loaded version exactly, so the new version is known now.
        new_version = aggregate.version + len(events)
        due = self.snapshot_every is not None and (
            new_version // self.snapshot_every > aggregate.version // self.snapshot_every)
        if conn is None and not (snapshot or due):
            # Nothing else to write: one statement in autocommit, one round trip.
            result = self.store.append(aggregate.stream_id, events, aggregate.version)
        else:
            with self._conn(conn) as c:
                result = self.store.append(aggregate.stream_id, events, aggregate.version, conn=c)
                if snapshot or due:
                    self.store.save_snapshot(aggregate.stream_id, aggregate.aggregate_type,
                                             aggregate.snapshot_schema_version, result.stream_version,
                                             aggregate.snapshot_state(), conn=c)
        aggregate.version = result.stream_version
        aggregate._pending.clear()
        return result

    def snapshot(self, aggregate: A, *, conn: psycopg.Connection[Any] | None = None) -> None:
        """Save the state of a loaded aggregate (with nothing pending) as a snapshot."""
        if aggregate.pending_events:
            raise ValueError("save the pending events before taking a snapshot")
        if aggregate.version == 0:
            raise ValueError("an aggregate with no events has no state to snapshot")
        self.store.save_snapshot(aggregate.stream_id, aggregate.aggregate_type, aggregate.snapshot_schema_version,
                                 aggregate.version, aggregate.snapshot_state(), conn=conn)

    def rewind(
        self,
        aggregate_id: str,
        to_version: int,
        *,
        expected_version: int,
        reason: str,
        actor: str,
        conn: psycopg.Connection[Any] | None = None,
    ) -> AppendResult:
        """Undo by appending a ``$rewind``: the state is as it was at ``to_version``. History
        keeps everything; loading afterwards gives that state plus what comes after."""
        return self.store.rewind(self.stream_id(aggregate_id), to_version, expected_version=expected_version,
                                 reason=reason, actor=actor, conn=conn)


__all__ = ["REWIND_TYPE", "Aggregate", "GenericEvent", "Repository", "Rewound", "handles"]
