"""`pyes capture`: history of existing tables (docs/adopting.md).

``add``, ``remove``, ``list``, ``backfill`` and ``history``. Each command opens one
connection of its own, in autocommit: ``add`` and ``remove`` are one statement each, and
``backfill`` commits batch by batch. Errors propagate to the group, which prints them with
their exit code (docs/cli.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click
import psycopg

from .. import capture as cap
from .common import dsn_option, emit, format_option, resolve

LIST_COLUMNS = ("table_name", "stream_prefix", "key_columns", "excluded_columns", "status", "backfill", "imported", "skipped")
HISTORY_COLUMNS = ("version", "recorded_at", "type", "changes", "actor", "reason")


def _connect(dsn: str | None) -> psycopg.Connection[Any]:
    return psycopg.connect(resolve(dsn), autocommit=True)


def _parse_key(text: str) -> Any:
    """A key as JSON (42, [7, 3], {"id": 42}); anything else is a string value."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@click.group("capture")
def capture() -> None:
    """Capture the changes of existing tables as events: history, time travel, undo."""


@capture.command("add")
@click.argument("table")
@click.option("--exclude", "-x", multiple=True, metavar="COLUMN",
              help="A column never written to events (passwords, tokens). Repeat for several.")
@click.option("--prefix", help="Stream prefix (the category). Default: the table's name.")
@format_option
@dsn_option
def add(table: str, exclude: tuple[str, ...], prefix: str | None, fmt: str, dsn: str | None) -> None:
    """Capture TABLE: every INSERT, UPDATE and DELETE appends an event to <prefix>-<key>.
    Run again to change the excluded columns."""
    with _connect(dsn) as conn:
        captured = cap.add(conn, table, exclude=exclude, prefix=prefix)
    emit([{k: v for k, v in asdict(captured).items() if k in LIST_COLUMNS}], fmt, columns=LIST_COLUMNS)
    if captured.backfill != "done" and fmt == "table":
        click.echo(f"Existing rows have no history yet: run `pyes capture backfill {table}`.", err=True)


@capture.command("remove")
@click.argument("table")
@dsn_option
def remove(table: str, dsn: str | None) -> None:
    """Stop capturing TABLE. Its history stays."""
    with _connect(dsn) as conn:
        cap.remove(conn, table)
    click.echo(f"{table}: capture removed; its history is kept")


@capture.command("list")
@format_option
@dsn_option
def list_(fmt: str, dsn: str | None) -> None:
    """Tables that are or were captured, with their status and backfill progress."""
    with _connect(dsn) as conn:
        rows = [asdict(t) for t in cap.list_tables(conn)]
    emit(rows, fmt, columns=LIST_COLUMNS if fmt == "table" else None)


@capture.command("backfill")
@click.argument("table")
@click.option("--batch-size", type=click.IntRange(1, 100000), default=1000, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True, help="A progress bar on stderr.")
@dsn_option
def backfill(table: str, batch_size: int, progress: bool, dsn: str | None) -> None:
    """Import TABLE's existing rows (one RowImported each), while the application keeps
    writing. Interrupted, it resumes from its last batch when run again."""
    with _connect(dsn) as conn:
        result = cap.backfill(conn, table, batch_size=batch_size, progress=progress)
    click.echo(f"{table}: {result.imported} rows imported, {result.skipped} already had history "
               f"({result.batches} batches, {result.retries} retried)")


@capture.command("history")
@click.argument("table")
@click.argument("key")
@format_option
@dsn_option
def history(table: str, key: str, fmt: str, dsn: str | None) -> None:
    """The history of one row of TABLE, change by change. KEY is 42, '"abc"', '[7, 3]' or
    '{"id": 42}'."""
    with _connect(dsn) as conn:
        rows = [asdict(change) for change in cap.history(conn, table, _parse_key(key))]
    emit(rows, fmt, columns=HISTORY_COLUMNS if fmt == "table" else None)


COMMANDS: list[click.Command] = [capture]
