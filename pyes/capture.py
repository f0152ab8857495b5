"""Capture: the history of an existing table, kept by triggers (docs/adopting.md).

Thin wrappers over the ``pyes.capture_*`` SQL functions. Every function takes a psycopg
connection and joins its transaction, except :func:`backfill`, which commits one batch at a
time (so that it can be interrupted and resumed). Errors come back as pyes exceptions
(``PE5xx``: :class:`~pyes.errors.CaptureError` and its subclasses).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .errors import translate

Key = Any
"""A row key: a dict of the key columns (``{"id": 42}``), a list of their values in key
order (``[7, 3]``), or a single value for a one-column key (``42``)."""

#: Event types of captured changes (stable: documented in docs/adopting.md).
ROW_CREATED, ROW_UPDATED, ROW_DELETED, ROW_IMPORTED = "RowCreated", "RowUpdated", "RowDeleted", "RowImported"


_RETRY_BATCH = {"55P03", "40P01", "40001"}


@dataclass(frozen=True)
class CapturedTable:
    table_name: str
    stream_prefix: str
    key_columns: tuple[str, ...]
    excluded_columns: tuple[str, ...]
    status: str
    missing_columns: tuple[str, ...]
    backfill: str
    imported: int
    skipped: int
    captured_at: datetime
    removed_at: datetime | None


@dataclass(frozen=True)
class RowChange:
    """One change of a row's history, with the row as it was after it (None: deleted)."""

    version: int
    recorded_at: datetime
    type: str
    operation: str | None
    changes: dict[str, Any] | None
    state: dict[str, Any] | None
    actor: str | None
    reason: str | None
    correlation_id: uuid.UUID | None
    db_role: str | None
    application_name: str | None
    event_id: uuid.UUID


@dataclass(frozen=True)
class BackfillResult:
    imported: int
    skipped: int
    batches: int
    retries: int


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as error:
        raise translate(error) from error


def _key(key: Key) -> Jsonb:
    return Jsonb(key)


def _row(conn: psycopg.Connection[Any], sql: Any, params: Sequence[Any]) -> dict[str, Any] | None:
    with _translated(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchone()


def _rows(conn: psycopg.Connection[Any], sql: Any, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    with _translated(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


# -- starting and stopping ---------------------------------------------------------------------


def add(conn: psycopg.Connection[Any], table: str, *, exclude: Sequence[str] = (), prefix: str | None = None) -> CapturedTable:
    """Capture ``table`` (a name, schema-qualified or as the search_path finds it): every
    INSERT, UPDATE and DELETE appends an event to ``<prefix>-<key>``. Called again, it changes
    the excluded columns."""
    _row(conn, "SELECT 1 FROM pyes.capture_add(%s::regclass, %s, %s)", (table, list(exclude), prefix))
    return _one(conn, table)


def remove(conn: psycopg.Connection[Any], table: str) -> None:
    """Stop capturing ``table``. Its history stays (and can still be read by table name)."""
    _row(conn, "SELECT 1 FROM pyes.capture_remove(%s::regclass)", (table,))


def list_tables(conn: psycopg.Connection[Any]) -> list[CapturedTable]:
    """Every table that is or was captured, with its status and backfill progress."""
    return [_captured(row) for row in _rows(conn, "SELECT * FROM pyes.capture_list()")]


def _one(conn: psycopg.Connection[Any], table: str) -> CapturedTable:
    row = _row(conn, "SELECT l.* FROM pyes.capture_list() l JOIN pyes.captured_tables c ON c.stream_prefix = l.stream_prefix"
                     " WHERE c.table_oid = %s::regclass", (table,))
    assert row is not None
    return _captured(row)


def _captured(row: dict[str, Any]) -> CapturedTable:
    return CapturedTable(
        table_name=row["table_name"], stream_prefix=row["stream_prefix"], key_columns=tuple(row["key_columns"]),
        excluded_columns=tuple(row["excluded_columns"]), status=row["status"],
        missing_columns=tuple(row["missing_columns"]), backfill=row["backfill"], imported=row["imported"],
        skipped=row["skipped"], captured_at=row["captured_at"], removed_at=row["removed_at"],
    )


# -- who and why ---------------------------------------------------------------------------------


@contextmanager
def audit(
    conn: psycopg.Connection[Any],
    *,
    actor: str | None = None,
    correlation_id: uuid.UUID | str | None = None,
    reason: str | None = None,
) -> Iterator[psycopg.Connection[Any]]:
    """Record ``actor``, ``correlation_id`` and ``reason`` in the events of the changes made
    in the block (the settings ``pyes.actor``, ``pyes.correlation_id``, ``pyes.reason``, set
    with ``set_config(..., true)`` like ``SET LOCAL``). In a transaction already open on
    ``conn``, the block joins it and the previous values come back at its end; otherwise
    the block is a transaction of its own."""
    values = {"pyes.actor": actor, "pyes.correlation_id": None if correlation_id is None else str(correlation_id),
              "pyes.reason": reason}
    chosen = {name: value for name, value in values.items() if value is not None}

    def apply(settings: dict[str, str]) -> None:
        for name, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))

    if conn.info.transaction_status == pq.TransactionStatus.IDLE and conn.autocommit:
        with _translated(), conn.transaction():
            apply(chosen)
            yield conn
        return
    if conn.info.transaction_status == pq.TransactionStatus.IDLE:
        # Not autocommit: the next statement opens the transaction the settings belong to.
        apply(chosen)
        yield conn
        return
    previous: dict[str, str] = {}
    for name in chosen:
        row = conn.execute("SELECT coalesce(current_setting(%s, true), '')", (name,)).fetchone()
        previous[name] = row[0] if row else ""
    apply(chosen)
    try:
        yield conn
    finally:
        if conn.info.transaction_status == pq.TransactionStatus.INTRANS:
            apply(previous)


# -- backfill --------------------------------------------------------------------------------


def backfill(
    conn: psycopg.Connection[Any],
    table: str,
    *,
    batch_size: int = 1000,
    lock_timeout_ms: int = 2000,
    max_retries: int = 100,
    progress: bool | Callable[[int, int], None] = False,
) -> BackfillResult:
    """Import the rows that existed before the capture, one ``RowImported`` each, in
    batches of ``batch_size`` rows, each batch its own transaction (``conn`` must not be in
    a transaction). Safe while the application writes, and resumable: run it again after an
    interruption and it goes on from the last committed batch.

    A batch waits at most ``lock_timeout_ms`` for the application's row locks, then is
    rolled back and run again (up to ``max_retries`` times in a row). ``progress`` is True
    for a progress bar on stderr (rich), or a callable ``(rows_done, rows_total)``."""
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise ValueError("backfill commits batch by batch: pass a connection outside a transaction")
    total = _remaining(conn, table)
    report: Callable[[int, int], None]
    bar = None
    if progress is True:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn(f"backfill {table}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       transient=False)
        task = bar.add_task("backfill", total=total)
        bar.start()

        def report(done: int, _total: int) -> None:
            bar.update(task, completed=done)
    elif callable(progress):
        report = progress
    else:
        def report(done: int, _total: int) -> None:
            return None

    imported = skipped = batches = retries = failures = 0
    try:
        while True:
            try:
                with _translated(), conn.transaction():
                    conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{lock_timeout_ms}ms",))
                    row = conn.execute("SELECT imported, skipped, done FROM pyes.capture_backfill_batch(%s::regclass, %s)",
                                       (table, batch_size)).fetchone()
            except Exception as error:
                # Waited too long for the application's row locks, or a deadlock with it: the
                # batch was rolled back; run it again.
                if getattr(error, "sqlstate", None) in _RETRY_BATCH and failures < max_retries:
                    failures += 1
                    retries += 1
                    time.sleep(min(1.0, 0.05 * failures))
                    continue
                raise
            failures = 0
            assert row is not None
            imported += row[0]
            skipped += row[1]
            batches += 1
            report(imported + skipped, max(total, imported + skipped))
            if row[2]:
                return BackfillResult(imported, skipped, batches, retries)
    finally:
        if bar is not None:
            bar.stop()


def _remaining(conn: psycopg.Connection[Any], table: str) -> int:
    """Rows the backfill has left to look at (counted now; the table may change meanwhile)."""
    with _translated():
        conn.execute("SELECT pyes.capture_registered(%s::regclass, true)", (table,))  # PE504 if not captured
        found = conn.execute(
            "SELECT c.backfill_done_at IS NOT NULL, c.backfill_cursor, c.key_columns, c.table_oid::text"
            " FROM pyes.captured_tables c WHERE c.table_oid = %s::regclass", (table,)).fetchone()
        assert found is not None
        done, cursor, keys, name = found
        if done:
            return 0
        relation = sql.SQL(name)  # regclass output: quoted and qualified as needed
        query = sql.SQL("SELECT count(*) FROM {} AS t").format(relation)
        params: tuple[Any, ...] = ()
        if cursor is not None:
            query = sql.SQL("SELECT count(*) FROM {} AS t WHERE ({}) > (SELECT {} FROM jsonb_populate_record(NULL::{}, %s) AS c)").format(
                relation,
                sql.SQL(", ").join(sql.SQL("t.") + sql.Identifier(k) for k in keys),
                sql.SQL(", ").join(sql.SQL("c.") + sql.Identifier(k) for k in keys),
                relation)
            params = (Jsonb(cursor),)
        counted = conn.execute(query, params).fetchone()
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        conn.rollback()
    return int(counted[0]) if counted else 0


# -- time travel and undo --------------------------------------------------------------------


def row_at(conn: psycopg.Connection[Any], table: str, key: Key, at: datetime) -> dict[str, Any] | None:
    """The row as it was at ``at`` (excluded columns left out), or None if it did not exist."""
    row = _row(conn, "SELECT pyes.capture_row_at(%s::regclass, %s, %s) AS state", (table, _key(key), at))
    return None if row is None else row["state"]


def rows_at(conn: psycopg.Connection[Any], table: str, at: datetime) -> list[dict[str, Any]]:
    """Every row of the table as it was at ``at``."""
    return [r["state"] for r in _rows(conn, "SELECT s AS state FROM pyes.capture_rows_at(%s::regclass, %s) s", (table, at))]


def history(conn: psycopg.Connection[Any], table: str, key: Key) -> list[RowChange]:
    """The row's history, oldest change first."""
    rows = _rows(conn, "SELECT * FROM pyes.capture_history(%s::regclass, %s)", (table, _key(key)))
    return [RowChange(**row) for row in rows]


def restore(
    conn: psycopg.Connection[Any], table: str, key: Key, at: datetime, *, reason: str, actor: str | None = None
) -> str:
    """Put the row back as it was at ``at`` with an UPDATE (or an INSERT if it was deleted
    since), recorded like any change with ``actor`` and ``reason``. Returns 'updated',
    'inserted' or 'unchanged'."""
    row = _row(conn, "SELECT pyes.capture_restore(%s::regclass, %s, %s, %s, %s) AS result",
               (table, _key(key), at, reason, actor))
    assert row is not None
    return str(row["result"])
