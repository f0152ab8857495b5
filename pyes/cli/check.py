"""``pyes check``: the schema drift check (docs/schema-evolution.md). Exit 0 without problems,
1 with problems; the usual codes (docs/cli.md) for connection and other errors."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click
import psycopg

from ..check import CheckReport, check
from .common import EXIT_FAILURE, dsn_option, resolve


@click.command("check")
@dsn_option
@click.option("--module", "-m", "modules", multiple=True, metavar="MODULE",
              help="Import MODULE (repeatable) first: its typed events, @upcaster functions, aggregates and "
                   "Python projections are checked too.")
@click.option("--path", "paths", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Put this folder on sys.path before importing the modules (repeatable).")
@click.option("--register", is_flag=True,
              help="First register the code's event schemas and Python upcasters in the database.")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True)
def check_command(dsn: str | None, modules: tuple[str, ...], paths: tuple[Path, ...], register: bool, fmt: str) -> None:
    """Fail (exit 1) when an event version cannot be upcast to the current one, a handler
    misses a type's current version, or a projection was built from older versions."""
    for path in paths:
        sys.path.insert(0, str(path.resolve()))
    url = resolve(dsn)
    with psycopg.connect(url, autocommit=True) as conn:
        report = check(conn, modules=modules, register=register)
    if fmt == "json":
        click.echo(json.dumps({"ok": report.ok, "problems": [asdict(p) for p in report.problems],
                               "checked": report.checked, "current": report.current,
                               "registered": report.registered}, indent=2))
    else:
        _print(report)
    if not report.ok:
        sys.exit(EXIT_FAILURE)


def _print(report: CheckReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False, markup=False, highlight=False)
    console.print("checked: " + ", ".join(f"{n} {what}" for what, n in report.checked.items()))
    if report.registered:
        console.print("registered: " + ", ".join(report.registered))
    if report.current:
        console.print("current versions: " + ", ".join(f"{t} v{v}" for t, v in sorted(report.current.items())))
    if report.ok:
        console.print("no problems", style="green")
        return
    table = Table(title=f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}", show_lines=True)
    for column in ("problem", "subject", "detail"):
        table.add_column(column, overflow="fold")
    for p in report.problems:
        table.add_row(p.kind, p.subject, p.detail)
    console.print(table)


COMMANDS = [check_command]
