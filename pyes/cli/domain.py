"""Commands of the domain layer: snapshots and undo by rewinding."""

from __future__ import annotations

import click

from .common import dsn_option, emit, format_option
from .events import session


@click.group()
def snapshots() -> None:
    """Inspect aggregate snapshots (pyes.snapshots)."""


@snapshots.command("list")
@dsn_option
@format_option
@click.option("--stream", "stream_id", help="Only this stream.")
@click.option("--type", "aggregate_type", help="Only this aggregate type.")
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
def list_snapshots(dsn: str | None, fmt: str, stream_id: str | None, aggregate_type: str | None, limit: int) -> None:
    """Snapshots, newest first: stream, aggregate type, schema version, version, size."""
    with session(dsn) as s:
        rows = s.query(
            "SELECT stream_id, aggregate_type, schema_version, version, pg_column_size(state) AS bytes, recorded_at"
            " FROM pyes.snapshots"
            " WHERE (%(stream)s::text IS NULL OR stream_id = %(stream)s)"
            "   AND (%(type)s::text IS NULL OR aggregate_type = %(type)s)"
            " ORDER BY recorded_at DESC, stream_id, version DESC LIMIT %(limit)s",
            {"stream": stream_id, "type": aggregate_type, "limit": limit},
        )
    emit(rows, fmt, title="snapshots",
         columns=("stream_id", "aggregate_type", "schema_version", "version", "bytes", "recorded_at"))


@click.command()
@dsn_option
@format_option
@click.argument("stream_id")
@click.argument("to_version", type=int)
@click.option("--expected-version", type=int, required=True,
              help="The version you looked at: the rewind fails (exit 4) if the stream has moved on.")
@click.option("--reason", required=True, help="Why: it goes into the audit trail.")
@click.option("--actor", required=True, help="Who decided it: it goes into the audit trail.")
def rewind(dsn: str | None, fmt: str, stream_id: str, to_version: int, expected_version: int, reason: str,
           actor: str) -> None:
    """Undo by appending a $rewind: STREAM's state is as it was at TO_VERSION. History keeps
    every event; readers fold the rewind (docs/domain.md)."""
    with session(dsn) as s:
        result = s.store.rewind(stream_id, to_version, expected_version=expected_version, reason=reason,
                                actor=actor, conn=s.conn)
    emit([{"stream_id": stream_id, "stream_version": result.stream_version, "positions": list(result.positions),
           "to_version": to_version}], fmt)


COMMANDS: list[click.Command] = [snapshots, rewind]
