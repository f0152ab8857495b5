"""``pyes projections``: register, run, rebuild, switch and inspect projections
(docs/projections.md, docs/cli.md)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..projections import BatchResult, Projections, ProjectionWorker, PythonProjection
from ..store import EventStore
from .common import dsn_option, emit, format_option, resolve
from .events import session

# The table's columns (json and jsonl give every field).
STATUS_COLUMNS = ("name", "version", "mode", "state", "lag_events", "held_by", "last_error")


@click.group()
def projections() -> None:
    """Read models kept by PostgreSQL (pyes.projections)."""


def _split(values: tuple[str, ...]) -> list[str] | None:
    """--types A --types B, or --types A,B."""
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    return items or None


@projections.command("status")
@dsn_option
@format_option
@click.argument("name", required=False)
def status(dsn: str | None, fmt: str, name: str | None) -> None:
    """Each projection: state, checkpoint, lag in events and seconds, which backend holds the
    lag back (held_by), whether it needs a rebuild, and its last error."""
    with session(dsn) as s:
        rows = Projections(s.store).status(name, conn=s.conn)
    emit([{**row.__dict__, "lag_seconds": round(row.lag_seconds, 3)} for row in rows], fmt,
         columns=STATUS_COLUMNS if fmt == "table" else None, title="projections")


@projections.command("register")
@dsn_option
@click.argument("sql_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
@click.option("--name", required=True, help="The projection's name.")
@click.option("--handler", help="Its SQL handler, such as 'bank.apply_balance(pyes.events)' (omit for Python).")
@click.option("--mode", type=click.Choice(["inline", "async"]), default="async", show_default=True)
@click.option("--types", "types", multiple=True, help="Event types it reads (repeat, or comma-separated). Default: all.")
@click.option("--schema", default="public", show_default=True, help="The schema of its tables.")
@click.option("--tables", multiple=True, help="The tables it owns (emptied by a rebuild).")
@click.option("--version", type=click.IntRange(1), default=1, show_default=True)
@click.option("--stream-column", help="The column keying its rows by stream: rewinds then need no code.")
@click.option("--rewind-handler", help="(rewind pyes.events, cancelled pyes.events[]) reversing what a rewind cancels.")
@click.option("--views", multiple=True, help="Stable view names over its tables, pointed at the current version.")
def register(dsn: str | None, sql_file: Path | None, name: str, handler: str | None, mode: str,
             types: tuple[str, ...], schema: str, tables: tuple[str, ...], version: int,
             stream_column: str | None, rewind_handler: str | None, views: tuple[str, ...]) -> None:
    """Register a projection, after running SQL_FILE (its tables and handler) if given, in
    one transaction. An inline projection then needs `pyes projections run --once` (or a
    worker) to catch up with history before it runs inline."""
    options: dict[str, Any] = {
        "event_types": _split(types), "mode": mode, "tables": _split(tables) or [], "schema": schema,
        "version": version, "stream_column": stream_column, "rewind_handler": rewind_handler,
        "views": _split(views),
    }
    with EventStore(resolve(dsn), max_size=1) as store:
        manager = Projections(store)
        if sql_file is not None:
            if handler is None:
                raise click.UsageError("--handler is required with an SQL file")
            row = manager.register_file(sql_file, name, handler, **options)
        else:
            row = manager.register(name, handler, **options)
    click.echo(f"registered projection {row.name!r} version {row.version} ({row.mode}, {row.state})")


def _load_python(specs: Iterable[str]) -> list[PythonProjection]:
    """module:attribute, naming a PythonProjection, a subclass of it, or a list of them."""
    found: list[PythonProjection] = []
    for spec in specs:
        module_name, _, attribute = spec.partition(":")
        if not attribute:
            raise click.BadParameter(f"{spec!r} is not module:attribute", param_hint="--module")
        value = getattr(importlib.import_module(module_name), attribute)
        for item in value if isinstance(value, list | tuple) else [value]:
            instance = item() if isinstance(item, type) else item
            if not isinstance(instance, PythonProjection):
                raise click.BadParameter(f"{spec} is not a pyes.PythonProjection", param_hint="--module")
            found.append(instance)
    return found


@projections.command("run")
@dsn_option
@click.option("--once", is_flag=True, help="Process what is due, then exit.")
@click.option("--module", "modules", multiple=True, help="module:attribute of Python projections to run too.")
@click.option("--poll", type=click.FloatRange(0.05), default=1.0, show_default=True,
              help="Seconds between polls when no notification arrives.")
@click.option("--batch", type=click.IntRange(1, 100000), default=1000, show_default=True)
@click.option("--no-listen", is_flag=True, help="Poll only (no LISTEN), e.g. behind a transaction pooler.")
def run(dsn: str | None, once: bool, modules: tuple[str, ...], poll: float, batch: int, no_listen: bool) -> None:
    """Run every asynchronous projection (and inline ones catching up) until SIGTERM or
    Ctrl-C: the batch in progress commits, then the worker exits."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    conninfo = resolve(dsn)
    with EventStore(conninfo, max_size=2) as store:
        worker = ProjectionWorker(store, _load_python(modules), poll_interval=poll, max_count=batch,
                                  listen=not no_listen, dsn=conninfo)
        if once:
            applied = worker.run_pending()
            click.echo(f"{applied} events applied")
            return
        worker.install_signal_handlers()
        click.echo(f"projection worker running (poll every {poll}s{'' if no_listen else ', LISTEN pyes_events'})",
                   err=True)
        worker.run()
    click.echo("projection worker stopped", err=True)


@projections.command("rebuild")
@dsn_option
@click.argument("name")
@click.option("--version", type=click.IntRange(1), help="Default: the current version.")
@click.option("--batch", type=click.IntRange(1, 100000), default=10000, show_default=True)
def rebuild(dsn: str | None, name: str, version: int | None, batch: int) -> None:
    """Empty the projection's tables and replay history into it, with a progress bar."""
    with EventStore(resolve(dsn), max_size=1) as store:
        manager = Projections(store)
        manager.reset(name, version)
        with store.connection() as conn:
            row = conn.execute(
                "WITH p AS MATERIALIZED (SELECT pyes.projection_type_names(event_types) AS types FROM pyes.projections"
                "           WHERE name = %s AND (version = %s OR (%s::int IS NULL AND is_current)))"
                " SELECT count(*) FROM pyes.events e, p"
                " WHERE p.types IS NULL OR e.type = ANY (p.types) OR e.type = '$rewind'",
                (name, version, version),
            ).fetchone()
        total = int(row[0]) if row else 0
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task(f"rebuilding {name}", total=total)

            def advance(result: BatchResult) -> None:
                progress.advance(task, result.processed)

            applied = manager.catch_up(name, version, max_count=batch, progress=advance)
    click.echo(f"rebuilt {name!r}: {applied} events applied")


def _simple(command_name: str, action: str, help_text: str) -> click.Command:
    @projections.command(command_name, help=help_text)
    @dsn_option
    @click.argument("name")
    @click.option("--version", type=click.IntRange(1), help="Default: the current version.")
    def command(dsn: str | None, name: str, version: int | None) -> None:
        with session(dsn) as s:
            getattr(Projections(s.store), action)(name, version, conn=s.conn)
        click.echo(f"{action}d {name!r}")

    return command


_simple("pause", "pause", "Stop applying a projection (an inline one resumes by catching up).")
_simple("resume", "resume", "Resume a paused or failed projection from its checkpoint.")


@projections.command("switch")
@dsn_option
@click.argument("name")
@click.argument("version", type=click.IntRange(1))
def switch(dsn: str | None, name: str, version: int) -> None:
    """Make VERSION current: its views now read its tables (it must have caught up)."""
    with session(dsn) as s:
        Projections(s.store).switch(name, version, conn=s.conn)
    click.echo(f"projection {name!r} now reads version {version}")


@projections.command("drop")
@dsn_option
@click.argument("name")
@click.option("--version", type=click.IntRange(1), help="Default: every version.")
@click.option("--drop-tables", is_flag=True, help="Drop its tables too.")
def drop(dsn: str | None, name: str, version: int | None, drop_tables: bool) -> None:
    """Unregister a projection (or one of its versions); its tables stay unless --drop-tables."""
    with session(dsn) as s:
        count = Projections(s.store).unregister(name, version, drop_tables=drop_tables, conn=s.conn)
    click.echo(f"dropped {count} version(s) of {name!r}")


@projections.command("as-of")
@dsn_option
@format_option
@click.argument("name")
@click.option("--at", "at", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S",
                                                  "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]), required=True,
              help="The moment (ISO 8601; without an offset, the server's time zone applies).")
@click.option("--into", "into_schema", required=True, help="A new schema to build it in.")
@click.option("--version", type=click.IntRange(1), help="Default: the current version.")
def as_of(dsn: str | None, fmt: str, name: str, at: datetime, into_schema: str, version: int | None) -> None:
    """Build NAME as of a past moment into a schema of its own, then query it there."""
    with session(dsn) as s:
        applied = Projections(s.store).as_of(name, at, into_schema, version, conn=s.conn)
    emit([{"projection": name, "as_of": at, "schema": into_schema, "events": applied}], fmt)


COMMANDS: list[click.Command] = [projections]
