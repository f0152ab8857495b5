"""pyes core: streams, events, append and the read functions

Revision ID: pyes_0001
Revises:
Create Date: 2026-11-26

Each revision runs what sql/install.sql lists under its "-- revision:" line: its table
files once, then every function file introduced up to it (CREATE OR REPLACE), so after the
last revision the schema is the one ``psql -f sql/install.sql`` gives
(tests/test_migrations.py compares catalogs).
"""

from pyes.migrate import run_script
from pyes.sqlfiles import revision_sql

revision = "pyes_0001"
down_revision = None
branch_labels = ("pyes",)
depends_on = None


def upgrade() -> None:
    run_script(revision_sql(revision))


def downgrade() -> None:
    run_script("DROP SCHEMA pyes CASCADE;")
