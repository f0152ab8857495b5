"""snapshots, time travel and rewind

Revision ID: pyes_0002
Revises: pyes_0001
Create Date: 2026-11-26
"""

from alembic import op

from pyes.sqlfiles import functions_sql, schema_sql

revision = "pyes_0002"
down_revision = "pyes_0001"
branch_labels = None
depends_on = None


def _run(sql: str) -> None:
    context = op.get_context()
    if context.as_sql:
        context.impl.static_output(sql)
    else:
        op.get_bind().connection.driver_connection.execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(schema_sql("005_snapshots.sql") + "\n" + functions_sql())


def downgrade() -> None:
    _run(
        """
        DROP FUNCTION pyes.rewind(text, bigint, bigint, text, text);
        DROP FUNCTION pyes.stream_version_at(text, timestamptz);
        DROP FUNCTION pyes.read_stream_until(text, timestamptz, bigint, integer);
        DROP FUNCTION pyes.read_stream_between(text, timestamptz, timestamptz, bigint, integer);
        DROP FUNCTION pyes.load_snapshot(text, text, integer, bigint);
        DROP FUNCTION pyes.save_snapshot(text, text, integer, bigint, jsonb);
        DROP FUNCTION pyes.validate_snapshot_kind(text, integer);
        DROP TABLE pyes.snapshots;
        """
    )
