"""``pyes db``: create, upgrade and inspect the pyes schema (alembic)."""

from __future__ import annotations

import io

import click

from .. import migrate
from .common import dsn_option, resolve


@click.group()
def db() -> None:
    """Create and upgrade the pyes schema (alembic)."""


@db.command()
@dsn_option
@click.argument("revision", default="heads")
def upgrade(dsn: str | None, revision: str) -> None:
    """Upgrade the schema to REVISION (default: the newest)."""
    target = resolve(dsn)
    migrate.upgrade(target, revision)
    click.echo(f"pyes schema at {', '.join(migrate.current(target)) or 'base'}")


@db.command()
@dsn_option
@click.argument("revision")
def downgrade(dsn: str | None, revision: str) -> None:
    """Downgrade the schema to REVISION ('base' removes the pyes schema and its events)."""
    target = resolve(dsn)
    migrate.downgrade(target, revision)
    click.echo(f"pyes schema at {', '.join(migrate.current(target)) or 'base'}")


@db.command()
@dsn_option
@click.argument("revision", default="heads")
def stamp(dsn: str | None, revision: str) -> None:
    """Mark a schema installed with psql (sql/install.sql) as being at REVISION."""
    target = resolve(dsn)
    migrate.stamp(target, revision)
    click.echo(f"pyes schema marked as {', '.join(migrate.current(target))}")


@db.command()
@dsn_option
def current(dsn: str | None) -> None:
    """Print the revision the database is at."""
    heads = migrate.current(resolve(dsn))
    click.echo(", ".join(heads) if heads else "base (pyes is not installed)")


@db.command()
def history() -> None:
    """List pyes's migrations, newest first."""
    for revision, down, message in migrate.history():
        click.echo(f"{down or 'base'} -> {revision}  {message.splitlines()[0] if message else ''}")


@db.command("sql")
@click.argument("revision", default="heads")
@click.option("--from", "start", default=None, help="Start revision (default: base).")
def sql(revision: str, start: str | None) -> None:
    """Print the SQL that upgrading to REVISION runs, for a DBA to review (offline: no
    database is contacted)."""
    from alembic import command

    buffer = io.StringIO()
    config = migrate.alembic_config(stdout=buffer)
    config.output_buffer = buffer
    command.upgrade(config, f"{start}:{revision}" if start else revision, sql=True)
    click.echo(buffer.getvalue(), nl=False)
