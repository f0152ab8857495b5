"""snapshots, time travel and rewind

Revision ID: pyes_0002
Revises: pyes_0001
Create Date: 2026-11-26
"""

from pyes.migrate import run_script
from pyes.sqlfiles import revision_sql

revision = "pyes_0002"
down_revision = "pyes_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(revision_sql(revision))


def downgrade() -> None:
    run_script(
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
