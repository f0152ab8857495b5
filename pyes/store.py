"""EventStore: the Python face of the ``pyes.*`` SQL functions.

Every method takes an optional ``conn``. Without it the store borrows a connection from its
pool and commits (or rolls back) before returning; with it the call joins the caller's
transaction, so that appends to several streams and the caller's own writes commit together.
The method names and arguments are those an asyncio twin would keep.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Self, TypeVar

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from . import jsonio
from .errors import is_retryable, translate
from .records import (
    RECORDED_COLUMNS,
    AppendResult,
    Expected,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    expected_text,
)

T = TypeVar("T")

_APPEND = "SELECT stream_version, positions FROM pyes.append(%s, %s, %s)"
_READ_STREAM = f"SELECT {RECORDED_COLUMNS} FROM pyes.read_stream(%s, %s, %s, %s)"
_READ_ALL = f"SELECT {RECORDED_COLUMNS} FROM pyes.read_all(%s, %s, %s)"
_READ_CATEGORY = f"SELECT {RECORDED_COLUMNS} FROM pyes.read_category(%s, %s, %s, %s)"
_READ_CORRELATION = f"SELECT {RECORDED_COLUMNS} FROM pyes.read_correlation(%s, %s, %s)"
_GET_EVENT = f"SELECT {RECORDED_COLUMNS} FROM pyes.get_event(%s)"
_READ_BETWEEN = f"SELECT {RECORDED_COLUMNS} FROM pyes.read_stream_between(%s, %s, %s, %s, %s)"


class EventStore:
    """An event store in one PostgreSQL database whose schema ``pyes`` is migrated.

    ``source`` is a connection string (the store then owns a pool) or a
    :class:`psycopg_pool.ConnectionPool` that the caller owns.
    """

    def __init__(
        self,
        source: str | ConnectionPool,
        *,
        min_size: int = 1,
        max_size: int = 4,
        json_dumps: Callable[[Any], str | bytes] = jsonio.dumps,
    ) -> None:
        if isinstance(source, ConnectionPool):
            self._pool, self._owns_pool = source, False
        else:
            # Autocommit: a call the store owns is one statement, hence one transaction and
            # one round trip (no BEGIN, no COMMIT). connection() opens a real transaction.
            self._pool = ConnectionPool(
                source, min_size=min_size, max_size=max_size, open=True, kwargs={"autocommit": True},
                configure=jsonio.configure,
            )
            self._owns_pool = True
        self._dumps = json_dumps
        self._ids_as_text = json_dumps is not jsonio.dumps  # jsonio.dumps writes a UUID itself

    @property
    def pool(self) -> ConnectionPool:
        return self._pool

    def close(self) -> None:
        if self._owns_pool:
            self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction that commits when the block ends (and rolls
        back if it raises)."""
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    @contextmanager
    def _use(self, conn: psycopg.Connection[Any] | None) -> Iterator[psycopg.Connection[Any]]:
        try:
            if conn is not None:
                yield conn
            elif self._owns_pool:
                # The store's own pool is in autocommit: there is no transaction to end, so
                # the connection's context (whose COMMIT would be a no-op round of the
                # driver's wait loop) is skipped. A caller's pool may not be: see below.
                own = self._pool.getconn()
                try:
                    yield own
                finally:
                    self._pool.putconn(own)
            else:
                with self._pool.connection() as own:
                    yield own
        except psycopg.Error as error:
            raise translate(error) from error

    # -- writing ---------------------------------------------------------------------------

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected = ExpectedVersion.ANY,
        *,
        conn: psycopg.Connection[Any] | None = None,
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically. Raises
        :class:`~pyes.errors.WrongExpectedVersion` if the stream is not as expected."""
        batch = Jsonb([event.to_json(ids_as_text=self._ids_as_text) for event in events], dumps=self._dumps)
        with self._use(conn) as c:
            row = c.execute(_APPEND, (stream_id, batch, expected_text(expected_version)), prepare=True).fetchone()
        assert row is not None
        return AppendResult(row[0], tuple(row[1]))

    def set_stream_metadata(
        self, stream_id: str, metadata: dict[str, Any], *, conn: psycopg.Connection[Any] | None = None
    ) -> None:
        with self._use(conn) as c:
            c.execute("SELECT pyes.set_stream_metadata(%s, %s)", (stream_id, Jsonb(metadata, dumps=self._dumps)))

    # -- reading ---------------------------------------------------------------------------

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        max_count: int = 1000,
        backward: bool = False,
        conn: psycopg.Connection[Any] | None = None,
    ) -> list[RecordedEvent]:
        direction = "backward" if backward else "forward"
        return self._read(_READ_STREAM, (stream_id, from_version, max_count, direction), conn)

    def read_all(
        self,
        *,
        after: str | None = None,
        max_count: int = 1000,
        types: Sequence[str] | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> list[RecordedEvent]:
        """Events in the global order that never skips a late commit, after the checkpoint
        ``after`` (``None``: from the beginning)."""
        return self._read(_READ_ALL, (after, max_count, _types(types)), conn)

    def read_category(
        self,
        category: str,
        *,
        after: str | None = None,
        max_count: int = 1000,
        types: Sequence[str] | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> list[RecordedEvent]:
        return self._read(_READ_CATEGORY, (category, after, max_count, _types(types)), conn)

    def read_correlation(
        self,
        correlation_id: uuid.UUID,
        *,
        after: str | None = None,
        max_count: int = 1000,
        conn: psycopg.Connection[Any] | None = None,
    ) -> list[RecordedEvent]:
        """Every committed event of one correlation id (an audit query, not a feed)."""
        return self._read(_READ_CORRELATION, (correlation_id, after, max_count), conn)

    def get_event(self, event_id: uuid.UUID, *, conn: psycopg.Connection[Any] | None = None) -> RecordedEvent | None:
        found = self._read(_GET_EVENT, (event_id,), conn)
        return found[0] if found else None

    def stream_version(self, stream_id: str, *, conn: psycopg.Connection[Any] | None = None) -> int:
        """The version of the stream's last event; 0 if it has none."""
        with self._use(conn) as c:
            row = c.execute("SELECT pyes.stream_version(%s)", (stream_id,)).fetchone()
        assert row is not None
        return int(row[0])

    def head_checkpoint(self, *, conn: psycopg.Connection[Any] | None = None) -> str:
        """A checkpoint from which reads return only what commits from now on (at least once)."""
        with self._use(conn) as c:
            row = c.execute("SELECT pyes.head_checkpoint()").fetchone()
        assert row is not None
        return str(row[0])

    def read_stream_between(
        self,
        stream_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        from_version: int | None = None,
        max_count: int = 1000,
        conn: psycopg.Connection[Any] | None = None,
    ) -> list[RecordedEvent]:
        """The stream's events recorded between two moments, both included (None: open)."""
        return self._read(_READ_BETWEEN, (stream_id, since, until, from_version, max_count), conn)

    def stream_version_at(self, stream_id: str, at: datetime, *, conn: psycopg.Connection[Any] | None = None) -> int:
        """The stream's version at a moment: that of its last event recorded at or before it."""
        with self._use(conn) as c:
            row = c.execute("SELECT pyes.stream_version_at(%s, %s)", (stream_id, at)).fetchone()
        assert row is not None
        return int(row[0])

    # -- snapshots and rewinds -------------------------------------------------------------

    def save_snapshot(
        self,
        stream_id: str,
        aggregate_type: str,
        schema_version: int,
        version: int,
        state: Mapping[str, Any],
        *,
        conn: psycopg.Connection[Any] | None = None,
    ) -> None:
        with self._use(conn) as c:
            c.execute("SELECT pyes.save_snapshot(%s, %s, %s, %s, %s)",
                      (stream_id, aggregate_type, schema_version, version, Jsonb(state, dumps=self._dumps)))

    def load_snapshot(
        self,
        stream_id: str,
        aggregate_type: str,
        schema_version: int,
        *,
        max_version: int | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> tuple[int, dict[str, Any]] | None:
        """(version, state) of the latest usable snapshot at or below ``max_version``."""
        with self._use(conn) as c:
            row = c.execute("SELECT version, state FROM pyes.load_snapshot(%s, %s, %s, %s)",
                            (stream_id, aggregate_type, schema_version, max_version)).fetchone()
        return None if row is None else (int(row[0]), row[1])

    def rewind(
        self,
        stream_id: str,
        to_version: int,
        *,
        expected_version: int,
        reason: str,
        actor: str,
        conn: psycopg.Connection[Any] | None = None,
    ) -> AppendResult:
        """Append a ``$rewind`` event: the stream's state is as it was at ``to_version``."""
        with self._use(conn) as c:
            row = c.execute("SELECT stream_version, positions FROM pyes.rewind(%s, %s, %s, %s, %s)",
                            (stream_id, to_version, expected_version, reason, actor)).fetchone()
        assert row is not None
        return AppendResult(row[0], tuple(row[1]))

    def _read(self, query: str, params: tuple[Any, ...], conn: psycopg.Connection[Any] | None) -> list[RecordedEvent]:
        with self._use(conn) as c:
            rows = c.execute(query, params).fetchall()
        return [RecordedEvent(*row) for row in rows]

    # -- transactions ----------------------------------------------------------------------

    def transaction(self, fn: Callable[[psycopg.Connection[Any]], T], *, attempts: int = 5) -> T:
        """Run ``fn(conn)`` in one transaction on a pooled connection, again (up to
        ``attempts`` times in all) when it fails with a retryable conflict (40001, 40P01)."""
        return retry_transaction(self.connection, fn, attempts=attempts)


def _types(types: Sequence[str] | None) -> list[str] | None:
    return None if types is None else list(types)


def retry_transaction(
    connect: Callable[[], Any],
    fn: Callable[[psycopg.Connection[Any]], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.005,
    max_delay: float = 0.25,
) -> T:
    """Run ``fn(conn)`` in a transaction and run it again when it fails with 40001
    (serialization failure, which pyes.append raises when a younger transaction wrote the
    stream first) or 40P01 (deadlock), with jittered exponential backoff.

    ``connect`` is a context-manager factory that yields a connection in a fresh transaction
    and commits at exit, such as ``store.connection`` or ``pool.connection``. ``fn`` must be
    safe to run again: everything it did in a failed attempt has been rolled back.
    Any other error, and the last retryable one, propagates (as its pyes exception)."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            try:
                with connect() as conn:
                    return fn(conn)
            except psycopg.Error as error:
                raise translate(error) from error
        except Exception as error:
            if attempt == attempts or not is_retryable(error):
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            time.sleep(delay * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")
