"""Projections: read models kept by PostgreSQL (docs/projections.md).

The work is done by the ``pyes.*`` projection functions; this module calls them, runs the
asynchronous worker (``pyes projections run``), and runs projections written in Python, whose
writes and checkpoint commit in one transaction.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from psycopg import sql

from .errors import ProjectionFailed, PyesError, translate
from .listening import close_listener, listen
from .records import RECORDED_COLUMNS, RecordedEvent
from .store import EventStore

log = logging.getLogger("pyes.projections")

Conn = psycopg.Connection[Any]

_STATUS_COLUMNS = (
    "name, version, mode, runner, state, is_current, checkpoint, events_processed, lag_events, "
    "lag_seconds, held_by, needs_rebuild, needs_rebuild_reason, last_error, last_error_sqlstate, "
    "failed_event_id, updated_at"
)


@dataclass(frozen=True)
class ProjectionStatus:
    """One row of ``pyes.projection_status()``."""

    name: str
    version: int
    mode: str
    runner: str
    state: str
    is_current: bool
    checkpoint: str
    events_processed: int
    lag_events: int
    lag_seconds: float
    held_by: str | None
    needs_rebuild: bool
    needs_rebuild_reason: str | None
    last_error: str | None
    last_error_sqlstate: str | None
    failed_event_id: uuid.UUID | None
    updated_at: datetime

    @property
    def due(self) -> bool:
        """Whether a worker has something to do for it (asynchronous and running, or an
        inline projection still catching up)."""
        return self.state == "catching_up" or (self.state == "running" and self.mode == "async")


@dataclass(frozen=True)
class BatchResult:
    """What one batch did: events that took effect, the checkpoint after it, the state, and
    whether the projection has caught up (or another worker held it: ``busy``)."""

    processed: int
    checkpoint: str
    state: str
    caught_up: bool
    busy: bool


class PythonProjection:
    """A projection whose handler is Python code. Subclass it, set ``name`` (and the other
    class attributes as needed) and implement :meth:`handle`, writing through ``conn``: the
    writes and the checkpoint commit together, so each event takes effect exactly once.

    Rewinds: with ``stream_column`` set, a ``$rewind`` deletes the stream's rows from
    ``tables`` and re-applies the stream's events as of the target version. Otherwise
    :meth:`on_rewind` is called with the events the rewind cancels; its default marks the
    projection as needing a rebuild.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    event_types: ClassVar[Sequence[str] | None] = None
    schema: ClassVar[str] = "public"
    tables: ClassVar[Sequence[str]] = ()
    stream_column: ClassVar[str | None] = None

    def handle(self, conn: Conn, event: RecordedEvent) -> None:
        raise NotImplementedError

    def on_rewind(self, conn: Conn, rewind: RecordedEvent, cancelled: list[RecordedEvent]) -> bool:
        """Reverse the ``cancelled`` events (newest first). Return False if this projection
        cannot, so that it is marked as needing a rebuild (the default)."""
        return False


class Projections:
    """Register, run, rebuild, switch and inspect projections.

    Every method takes an optional ``conn`` to join the caller's transaction."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    @contextmanager
    def _use(self, conn: Conn | None) -> Iterator[Conn]:
        try:
            if conn is not None:
                yield conn
            else:
                with self.store.connection() as own:
                    yield own
        except psycopg.Error as error:
            raise translate(error) from error

    # -- registry ---------------------------------------------------------------------------

    def register(
        self,
        name: str,
        handler: str | None,
        *,
        event_types: Sequence[str] | None = None,
        mode: str = "async",
        tables: Sequence[str] = (),
        schema: str = "public",
        version: int = 1,
        stream_column: str | None = None,
        rewind_handler: str | None = None,
        views: Sequence[str] | None = None,
        conn: Conn | None = None,
    ) -> ProjectionStatus:
        """Register a projection. ``handler`` is a function signature such as
        ``"bank.apply_balance(pyes.events)"``, or ``"bank.apply_balances(pyes.events[])"`` for a
        batch handler, called once per batch (None: a Python projection)."""
        with self._use(conn) as c:
            c.execute(
                "SELECT 1 FROM pyes.register_projection(%s, %s::regprocedure, %s, %s, %s, %s, %s, %s, %s::regprocedure, %s)",
                (name, handler, _list(event_types), mode, list(tables), schema, version, stream_column,
                 rewind_handler, _list(views)),
            )
            return self._status_row(c, name, version)

    def register_file(self, path: str | Path, name: str, handler: str, *, conn: Conn | None = None,
                      **options: Any) -> ProjectionStatus:
        """Run a ``.sql`` file that creates the projection's tables and handler, then
        register it, in one transaction. ``options`` are those of :meth:`register`."""
        script = Path(path).read_text()
        with self._use(conn) as c:
            c.execute(script.encode())
            return self.register(name, handler, conn=c, **options)

    def register_python(self, projection: PythonProjection, *, conn: Conn | None = None) -> ProjectionStatus:
        return self.register(
            projection.name, None, event_types=projection.event_types, mode="async",
            tables=projection.tables, schema=projection.schema, version=projection.version,
            stream_column=projection.stream_column, conn=conn,
        )

    def unregister(self, name: str, version: int | None = None, *, drop_tables: bool = False,
                   conn: Conn | None = None) -> int:
        with self._use(conn) as c:
            return int(_one(c, "SELECT pyes.unregister_projection(%s, %s, %s)", (name, version, drop_tables)))

    def pause(self, name: str, version: int | None = None, *, conn: Conn | None = None) -> None:
        with self._use(conn) as c:
            c.execute("SELECT 1 FROM pyes.pause_projection(%s, %s)", (name, version))

    def resume(self, name: str, version: int | None = None, *, conn: Conn | None = None) -> None:
        with self._use(conn) as c:
            c.execute("SELECT 1 FROM pyes.resume_projection(%s, %s)", (name, version))

    def reset(self, name: str, version: int | None = None, *, conn: Conn | None = None) -> None:
        """Empty the projection's tables and move its checkpoint to the start of history."""
        with self._use(conn) as c:
            c.execute("SELECT 1 FROM pyes.reset_projection(%s, %s)", (name, version))

    def switch(self, name: str, version: int, *, conn: Conn | None = None) -> None:
        """Make ``version`` current (its views now read its tables)."""
        with self._use(conn) as c:
            c.execute("SELECT 1 FROM pyes.switch_projection(%s, %s)", (name, version))

    def status(self, name: str | None = None, *, conn: Conn | None = None) -> list[ProjectionStatus]:
        with self._use(conn) as c:
            rows = c.execute(f"SELECT {_STATUS_COLUMNS} FROM pyes.projection_status(%s)", (name,)).fetchall()
        return [ProjectionStatus(*row) for row in rows]

    def _status_row(self, c: Conn, name: str, version: int) -> ProjectionStatus:
        for row in self.status(name, conn=c):
            if row.version == version:
                return row
        raise AssertionError(f"projection {name} v{version} vanished")

    def as_of(self, name: str, at: datetime, into_schema: str, version: int | None = None, *,
              conn: Conn | None = None) -> int:
        """Build the projection as of ``at`` into the new schema ``into_schema``; returns
        the number of events applied."""
        with self._use(conn) as c:
            return int(_one(c, "SELECT pyes.project_as_of(%s, %s, %s, %s)", (name, at, into_schema, version)))

    # -- running ----------------------------------------------------------------------------

    def run_once(self, name: str, version: int | None = None, *, max_count: int = 1000,
                 conn: Conn | None = None) -> BatchResult:
        """One batch of an SQL projection, in one transaction (the caller's, with ``conn``)."""
        with self._use(conn) as c:
            row = c.execute(
                "SELECT processed, checkpoint, state, caught_up, busy FROM pyes.run_projection(%s, %s, %s)",
                (name, version, max_count),
            ).fetchone()
        assert row is not None
        return BatchResult(*row)

    def run_python_once(self, projection: PythonProjection, *, max_count: int = 1000) -> BatchResult:
        """One batch of a Python projection: claim it (the registry row stays locked), apply
        it, move the checkpoint, commit. A handler error rolls all of it back and marks the
        projection failed at that event."""
        failed: tuple[RecordedEvent, BaseException] | None = None
        with self._use(None) as c:
            # One xmin line for the batch: the claim reads below it, the checkpoint moves to it.
            below = _one(c, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text", ())
            rows = c.execute(
                f"SELECT {RECORDED_COLUMNS} FROM pyes.claim_projection_batch(%s, %s, %s, %s::xid8)",
                (projection.name, projection.version, max_count, below),
            ).fetchall()
            events = [RecordedEvent(*row) for row in rows]
            state = _one(c, "SELECT state FROM pyes.projections WHERE name = %s AND version = %s",
                         (projection.name, projection.version))
            locked = c.execute(
                "SELECT 1 FROM pyes.projections WHERE name = %s AND version = %s FOR UPDATE SKIP LOCKED",
                (projection.name, projection.version),
            ).fetchone() is not None
            if not locked or state != "running":
                checkpoint = self._checkpoint(c, projection)
                return BatchResult(0, checkpoint, str(state), state == "running" and locked, not locked)
            try:
                with c.transaction():
                    for event in events:
                        failed = (event, RuntimeError("unfinished"))
                        self._apply_python(c, projection, event)
                    failed = None
            except Exception as handler_error:  # noqa: BLE001 - any handler error is recorded, not raised
                assert failed is not None
                failed = (failed[0], handler_error)
            if failed is None:
                caught_up = len(events) < max_count
                checkpoint = _one(c, "SELECT pyes.advance_projection(%s, %s, %s, %s, %s, %s::xid8)", (
                    projection.name, projection.version, events[-1].checkpoint if events else None, len(events),
                    caught_up, below))
                return BatchResult(len(events), str(checkpoint), "running", caught_up, False)
            event, cause = failed
            log.error("projection %s v%s failed on event %s: %r", projection.name, projection.version,
                      event.event_id, cause)
            sqlstate = getattr(cause, "sqlstate", None)
            c.execute("SELECT pyes.fail_projection(%s, %s, %s, %s, %s)", (
                projection.name, projection.version, event.event_id, sqlstate, f"{type(cause).__name__}: {cause}"))
            return BatchResult(0, self._checkpoint(c, projection), "failed", False, False)

    def _checkpoint(self, c: Conn, projection: PythonProjection) -> str:
        return str(_one(c, "SELECT pyes.checkpoint_token(checkpoint_xid, checkpoint_position) FROM pyes.projections"
                           " WHERE name = %s AND version = %s", (projection.name, projection.version)))

    def _apply_python(self, c: Conn, projection: PythonProjection, event: RecordedEvent) -> None:
        if event.type != "$rewind":
            projection.handle(c, event)
            return
        to_version = int(event.data["to_version"])
        after = self._stream_events(c, projection, event.stream_id, to_version)
        if projection.stream_column is not None:
            for table in projection.tables:
                c.execute(sql.SQL("DELETE FROM {}.{} WHERE {} = %s").format(
                    sql.Identifier(projection.schema), sql.Identifier(table), sql.Identifier(projection.stream_column)),
                    (event.stream_id,))
            for e in after:
                projection.handle(c, e)
            return
        before = self._stream_events(c, projection, event.stream_id, event.version - 1)
        after_ids = {e.event_id for e in after}
        before_ids = {e.event_id for e in before}
        cancelled = [e for e in reversed(before) if e.event_id not in after_ids]
        if projection.on_rewind(c, event, cancelled):
            for e in after:
                if e.event_id not in before_ids:
                    projection.handle(c, e)
            return
        c.execute(
            "UPDATE pyes.projections SET needs_rebuild = true, updated_at = now(), needs_rebuild_reason ="
            " coalesce(needs_rebuild_reason, format('stream %%L was rewound to version %%s by event %%s (position %%s),"
            " and the projection has no rewind handling', %s::text, %s::bigint, %s::uuid, %s::bigint))"
            " WHERE name = %s AND version = %s",
            (event.stream_id, to_version, event.event_id, event.position, projection.name, projection.version),
        )

    def _stream_events(self, c: Conn, projection: PythonProjection, stream_id: str, version: int) -> list[RecordedEvent]:
        rows = c.execute(
            f"SELECT {RECORDED_COLUMNS} FROM pyes.recorded_events WHERE stream_id = %s"
            " AND version = ANY (pyes.effective_versions(%s, %s)) AND (%s::text[] IS NULL OR type = ANY (%s::text[]))"
            " ORDER BY version",
            (stream_id, stream_id, version, _list(projection.event_types), _list(projection.event_types)),
        ).fetchall()
        return [RecordedEvent(*row) for row in rows]

    def catch_up(self, name: str, version: int | None = None, *, max_count: int = 1000,
                 progress: Callable[[BatchResult], None] | None = None) -> int:
        """Run batches of an SQL projection until it has caught up (an inline one until it
        runs inline). Returns the number of events applied. Raises ProjectionFailed if a
        handler fails."""
        total = 0
        while True:
            result = self.run_once(name, version, max_count=max_count)
            total += result.processed
            if progress is not None:
                progress(result)
            if result.state == "failed":
                raise ProjectionFailed(self._failure(name, version))
            if result.busy:
                time.sleep(0.05)
            elif result.caught_up or result.state == "paused":
                return total

    def _failure(self, name: str, version: int | None) -> str:
        for row in self.status(name):
            if version is None and row.is_current or row.version == version:
                return f"projection {name!r} v{row.version} failed on event {row.failed_event_id}: {row.last_error}"
        return f"projection {name!r} failed"


class ProjectionWorker:
    """Runs every due asynchronous projection (SQL ones through ``pyes.run_projection``,
    Python ones given here), and inline ones still catching up, until stopped.

    It wakes on ``LISTEN pyes_events`` and also polls every ``poll_interval`` seconds, so a
    missed notification (a reconnect, a transaction-mode pooler, ``listen=False``) only
    delays it. Any number of workers can run: each projection's batch locks its registry
    row, so one worker at a time processes it. :meth:`stop` (and SIGTERM, with
    :meth:`install_signal_handlers`) lets the current batch commit, then returns.
    """

    def __init__(self, store: EventStore, python_projections: Iterable[PythonProjection] = (), *,
                 poll_interval: float = 1.0, max_count: int = 1000, listen: bool = True,
                 dsn: str | None = None) -> None:
        self.projections = Projections(store)
        self.python = {(p.name, p.version): p for p in python_projections}
        self.poll_interval = poll_interval
        self.max_count = max_count
        self.listen = listen
        self._dsn = dsn
        self._stop = threading.Event()
        self.batches = 0

    def stop(self, *_args: object) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run_pending(self) -> int:
        """Process every due projection until none has more below the xmin line (or the
        worker is stopped). Returns the number of events applied."""
        total = 0
        progressed = True
        while progressed and not self.stopping:
            progressed = False
            for name, version, runs_in_python in self._due():
                if self.stopping:
                    break
                if runs_in_python:
                    projection = self.python.get((name, version))
                    if projection is None:
                        continue  # another worker runs the Python code of that one
                    result = self.projections.run_python_once(projection, max_count=self.max_count)
                else:
                    result = self.projections.run_once(name, version, max_count=self.max_count)
                self.batches += 1
                total += result.processed
                if not result.busy and not result.caught_up and result.state in ("running", "catching_up"):
                    progressed = True
        return total

    def _due(self) -> list[tuple[str, int, bool]]:
        """(name, version, run by Python) of the projections a worker has work for: read from
        the registry alone (the status's lag counts would scan the events on every pass)."""
        with self.projections.store.pool.connection() as c:
            rows = c.execute(
                "SELECT name, version, handler IS NULL FROM pyes.projections"
                " WHERE state = 'catching_up' OR (state = 'running' AND mode = 'async') ORDER BY name, version"
            ).fetchall()
        return [(str(n), int(v), bool(py)) for n, v, py in rows]

    def run(self) -> None:
        """Run until :meth:`stop` (or SIGTERM after :meth:`install_signal_handlers`)."""
        listener = self._listener() if self.listen else None
        try:
            while not self.stopping:
                try:
                    self.run_pending()
                except PyesError as error:
                    log.error("projection worker: %s", error)
                if self.stopping:
                    break
                self._wait(listener)
        finally:
            if listener is not None:
                close_listener(listener)

    def _listener(self) -> Conn:
        dsn = self._dsn
        if dsn is None:
            with self.projections.store.pool.connection() as c:
                dsn = c.info.dsn
                password = c.info.password
            if password:
                dsn = f"{dsn} password={password}"
        conn = psycopg.connect(dsn, autocommit=True)
        listen(conn)
        return conn

    def _wait(self, listener: Conn | None) -> None:
        """Sleep until a notification, the poll interval, or stop(). After a notification,
        the events it announces may still be above the xmin line (an older transaction
        elsewhere has not ended yet): look again a few times, soon, before the next poll."""
        if listener is None:
            self._stop.wait(self.poll_interval)
            return
        deadline = time.monotonic() + self.poll_interval
        while not self.stopping and time.monotonic() < deadline:
            # Short slices, so that stop() is noticed quickly.
            slice_ = min(0.2, max(0.0, deadline - time.monotonic()))
            if any(True for _notify in listener.notifies(timeout=slice_, stop_after=1)):
                self._settle_after_wake(deadline)
                return

    def _settle_after_wake(self, deadline: float) -> None:
        delay = 0.02
        while not self.stopping and time.monotonic() + delay < deadline:
            if self.run_pending() > 0:
                return
            self._stop.wait(delay)
            delay = min(delay * 2, 1.0)

def _one(c: Conn, query: str, params: tuple[Any, ...]) -> Any:
    row = c.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _list(values: Sequence[str] | None) -> list[str] | None:
    return None if values is None else list(values)
