"""The ``pyes`` command."""

from __future__ import annotations

import sys

import click

from . import migrate
from .dsn import NoDatabaseConfigured, resolve_dsn

dsn_option = click.option(
    "--dsn",
    envvar=None,
    help="Connection string or URI. Default: PYES_DATABASE_URL, then the PG* variables.",
)


def _dsn(dsn: str | None) -> str:
    try:
        return resolve_dsn(dsn)
    except NoDatabaseConfigured as error:
        raise click.UsageError(str(error)) from error


@click.group()
@click.version_option(package_name="pyes-eventstore")
def main() -> None:
    """pyes: event sourcing inside PostgreSQL."""


@main.group()
def db() -> None:
    """Create and upgrade the pyes schema (alembic)."""


@db.command()
@dsn_option
@click.argument("revision", default="heads")
def upgrade(dsn: str | None, revision: str) -> None:
    """Upgrade the schema to REVISION (default: the newest)."""
    target = _dsn(dsn)
    migrate.upgrade(target, revision)
    click.echo(f"pyes schema at {', '.join(migrate.current(target)) or 'base'}")


@db.command()
@dsn_option
@click.argument("revision")
def downgrade(dsn: str | None, revision: str) -> None:
    """Downgrade the schema to REVISION ('base' removes the pyes schema and its events)."""
    target = _dsn(dsn)
    migrate.downgrade(target, revision)
    click.echo(f"pyes schema at {', '.join(migrate.current(target)) or 'base'}")


@db.command()
@dsn_option
@click.argument("revision", default="heads")
def stamp(dsn: str | None, revision: str) -> None:
    """Mark a schema installed with psql (sql/install.sql) as being at REVISION."""
    target = _dsn(dsn)
    migrate.stamp(target, revision)
    click.echo(f"pyes schema marked as {', '.join(migrate.current(target))}")


@db.command()
@dsn_option
def current(dsn: str | None) -> None:
    """Print the revision the database is at."""
    heads = migrate.current(_dsn(dsn))
    click.echo(", ".join(heads) if heads else "base (pyes is not installed)")


@db.command()
def history() -> None:
    """List pyes's migrations, newest first."""
    for revision, down, message in migrate.history():
        click.echo(f"{down or 'base'} -> {revision}  {message.splitlines()[0] if message else ''}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
