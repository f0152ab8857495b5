"""function bodies of this release: the capture trigger's short path, batch projection handlers

Revision ID: pyes_0009
Revises: pyes_0008
Create Date: 2026-12-03
"""

from pyes.migrate import run_script
from pyes.sqlfiles import revision_sql

revision = "pyes_0009"
down_revision = "pyes_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No table of its own: every function file again (all CREATE OR REPLACE), so that a
    # database migrated to pyes_0008 by an earlier pyes runs this package's functions.
    run_script(revision_sql(revision))


def downgrade() -> None:
    # Nothing to undo: the functions it re-applied are the ones every revision applies (each
    # runs the package's function files), and they work on the schema of pyes_0008.
    pass
