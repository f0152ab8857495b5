"""What every ``pyes`` command shares: which database, output formats, errors and exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click
import psycopg

from ..dsn import configured_dsn
from ..errors import ConcurrencyError, InvalidInput, PyesError

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes, documented in docs/cli.md. click itself exits with 2 on a usage error.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_CONFLICT = 4
EXIT_INVALID_INPUT = 5
EXIT_PYES_ERROR = 6

FORMATS = ("table", "json", "jsonl")


def dsn_option(fn: F) -> F:
    return click.option(
        "--dsn",
        help="Connection string or URI. Default: PYES_DATABASE_URL, then the PG* variables, "
        "then the embedded database (pyes embedded status).",
    )(fn)


def format_option(fn: F) -> F:
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
        help="table for people; json (one document) or jsonl (one object per line) for scripts.",
    )(fn)


def resolve(dsn: str | None) -> str:
    """The database a command talks to: --dsn, PYES_DATABASE_URL, the PG* variables, or else
    the embedded database (started and migrated on first use), which is said on stderr."""
    found = configured_dsn(dsn)
    if found is not None:
        return found
    from .embedded import ensure_embedded  # the embedded server is only needed here

    uri = ensure_embedded()
    click.echo(f"pyes: using the embedded database ({uri})", err=True)
    return uri


def emit(rows: Sequence[dict[str, Any]], fmt: str, *, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """Print rows as a table (rich) or as json / jsonl (stable: keys as given, values as JSON)."""
    if fmt == "json":
        click.echo(json.dumps(list(rows), default=_json_default, ensure_ascii=False, indent=2))
    elif fmt == "jsonl":
        for row in rows:
            click.echo(json.dumps(row, default=_json_default, ensure_ascii=False))
    else:
        from rich.console import Console
        from rich.table import Table

        cols = list(columns or (rows[0].keys() if rows else []))
        table = Table(title=title, show_lines=False)
        for col in cols:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(row.get(col)) for col in cols))
        # markup=False: event data is printed as it is, never read as rich markup.
        Console(soft_wrap=False, markup=False).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    return str(value)


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, click.ClickException):
        return error.exit_code
    if isinstance(error, psycopg.OperationalError):
        return EXIT_CONNECTION
    if isinstance(error, ConcurrencyError):
        return EXIT_CONFLICT
    if isinstance(error, InvalidInput):
        return EXIT_INVALID_INPUT
    if isinstance(error, PyesError):
        return EXIT_PYES_ERROR
    return EXIT_FAILURE


def report(error: BaseException, verbose: bool) -> int:
    """One clear line (plus DETAIL and HINT for pyes errors) on stderr; the traceback only
    with --verbose. Returns the exit code."""
    code = exit_code_for(error)
    if verbose:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, PyesError):
        kind = type(error).__name__
        state = f" [{error.sqlstate}]" if error.sqlstate else ""
        click.echo(f"pyes: {kind}{state}: {error.message}", err=True)
        if error.detail:
            click.echo(f"  detail: {error.detail}", err=True)
        if error.hint:
            click.echo(f"  hint: {error.hint}", err=True)
    elif isinstance(error, psycopg.OperationalError):
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        click.echo(f"pyes: cannot reach the database: {first}", err=True)
        click.echo("  hint: check --dsn / PYES_DATABASE_URL, or unset them to use the embedded database", err=True)
    else:
        click.echo(f"pyes: {type(error).__name__}: {error}", err=True)
        if not verbose:
            click.echo("  hint: run again with --verbose for the traceback", err=True)
    return code


def rows_of(items: Iterable[Any], fields: Sequence[str]) -> list[dict[str, Any]]:
    return [{name: getattr(item, name) for name in fields} for item in items]
