"""Alembic, driven from Python and from ``pyes db``.

pyes keeps its revisions in their own branch (label ``pyes``) and, when it runs them itself,
its own version table ``pyes_alembic_version``, so that it never collides with an
application's alembic history. An application with its own alembic project can include the
revisions instead: see the README.
"""

from __future__ import annotations

import io
from typing import Any

import psycopg
import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .sqlfiles import migrations_dir

VERSION_TABLE = "pyes_alembic_version"


def run_script(sql: str) -> None:
    """Run a multi-statement SQL script from inside a migration. Online it goes through the
    raw psycopg connection, so that SQLAlchemy does not read ":name" in it as a bind
    parameter; offline (--sql) it is written out as it is, since op.execute would escape
    every '%'."""
    from alembic import op

    context = op.get_context()
    if context.as_sql:
        context.impl.static_output(sql)
    else:
        op.get_bind().connection.driver_connection.execute(sql)  # type: ignore[union-attr]


def engine_for(dsn: str) -> sqlalchemy.Engine:
    """A SQLAlchemy engine over psycopg 3 for any libpq connection string or URI."""
    return sqlalchemy.create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=sqlalchemy.NullPool
    )


def alembic_config(dsn: str | None = None, *, stdout: Any = None) -> Config:
    config = Config(stdout=stdout or io.StringIO())
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["pyes_dsn"] = dsn
    return config


def upgrade(dsn: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


def stamp(dsn: str, revision: str = "heads") -> None:
    """Record REVISION as applied without running it: for a schema installed with
    ``psql -f sql/install.sql``, so that later upgrades can go through alembic."""
    command.stamp(alembic_config(dsn), revision)


def current(dsn: str) -> list[str]:
    """The revisions the database is at (empty before the first upgrade)."""
    engine = engine_for(dsn)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return list(context.get_current_heads())
    finally:
        engine.dispose()


def history() -> list[tuple[str, str | None, str]]:
    """Every revision, newest first: (revision, down revision, message)."""
    script = ScriptDirectory.from_config(alembic_config())
    out = []
    for rev in script.walk_revisions():
        down = rev.down_revision if isinstance(rev.down_revision, str) or rev.down_revision is None else ",".join(rev.down_revision)
        out.append((rev.revision, down, rev.doc or ""))
    return out


def head() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, heads
    return heads[0]
