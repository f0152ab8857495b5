"""The ``pyes`` command: a click group whose subcommands live in the modules of this package."""

from __future__ import annotations

from typing import Any

import click
import psycopg

from ..errors import PyesError
from .common import report


class PyesGroup(click.Group):
    """Turns expected errors into one line and an exit code (docs/cli.md); --verbose shows
    the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (PyesError, psycopg.Error) as error:
            verbose = bool(ctx.obj and ctx.obj.get("verbose"))
            ctx.exit(report(error, verbose))


@click.group(cls=PyesGroup)
@click.version_option(package_name="pyes-eventstore")
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks of errors.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """pyes: event sourcing inside PostgreSQL."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


def _register() -> None:
    from . import capture, check, db, domain, embedded, events, projections, subscriptions

    main.add_command(db.db)
    main.add_command(embedded.embedded)
    for group in (projections.COMMANDS + subscriptions.COMMANDS + capture.COMMANDS):
        main.add_command(group)
    for command in events.COMMANDS + domain.COMMANDS + check.COMMANDS:
        main.add_command(command)


_register()
