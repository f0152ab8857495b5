"""a leaner stream row: category set when the stream is created, no CHECK constraints on the row every append updates

Revision ID: pyes_0008
Revises: pyes_0007
Create Date: 2026-12-03
"""

from pyes.migrate import run_script
from pyes.sqlfiles import revision_sql, sql_dir

revision = "pyes_0008"
down_revision = "pyes_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(revision_sql(revision))


def downgrade() -> None:
    # PostgreSQL 15 cannot turn a column back into a generated one in place, and a column
    # added again would come last: rebuild pyes.streams exactly as revision 0001 makes it
    # (schema/002_streams.sql), with its rows, and put back its triggers
    # (020_immutability.sql). The rows wait in a temporary table, so that the new table's
    # constraints get their own names (PostgreSQL 18 names NOT NULL constraints too, and
    # would number them if the old table still had them).
    run_script(
        """
        CREATE TEMPORARY TABLE streams_pyes_0008 ON COMMIT DROP AS
        SELECT stream_id, version, last_xid, metadata, created_at, updated_at FROM pyes.streams;
        DROP TABLE pyes.streams;
        DROP FUNCTION pyes.set_stream_category();
        """
    )
    run_script((sql_dir() / "schema" / "002_streams.sql").read_text())
    run_script(
        """
        INSERT INTO pyes.streams (stream_id, version, last_xid, metadata, created_at, updated_at)
        SELECT stream_id, version, last_xid, metadata, created_at, updated_at FROM streams_pyes_0008;
        DROP TABLE streams_pyes_0008;
        """
    )
    run_script((sql_dir() / "functions" / "020_immutability.sql").read_text())
