"""pyes core: streams, events, append and the read functions

Revision ID: pyes_0001
Revises:
Create Date: 2026-11-26

Creates the tables of this revision, then applies the function files it introduced.
Function files are CREATE OR REPLACE and later revisions re-apply them all, so after the
last revision the schema is the one ``psql -f sql/install.sql`` gives
(tests/test_migrations.py compares catalogs).
"""

from pyes.migrate import run_script
from pyes.sqlfiles import functions_sql, schema_sql

revision = "pyes_0001"
down_revision = None
branch_labels = ("pyes",)
depends_on = None


# The function files of this revision; later revisions add theirs and re-apply all.
FUNCTION_FILES = (
    "010_settings.sql", "011_checkpoint.sql", "012_recorded_events.sql", "020_immutability.sql",
    "030_validate.sql", "040_append.sql", "041_stream_metadata.sql", "050_read_stream.sql",
    "051_read_all.sql", "052_read_category.sql", "053_read_correlation.sql",
)


def upgrade() -> None:
    run_script(schema_sql("001_schema.sql", "002_streams.sql", "003_events.sql") + "\n" + functions_sql(*FUNCTION_FILES))


def downgrade() -> None:
    run_script("DROP SCHEMA pyes CASCADE;")
