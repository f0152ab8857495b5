"""one trigger after appends (schema check, inline projections, notification); notify only while someone listens

Revision ID: pyes_0007
Revises: pyes_0006
Create Date: 2026-11-26
"""

from pyes.migrate import run_script
from pyes.sqlfiles import revision_sql, sql_dir

revision = "pyes_0007"
down_revision = "pyes_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(revision_sql(revision))


def downgrade() -> None:
    # Drop what this revision made, then put back the two triggers it replaced and the
    # generator of pyes.project_inline() as revisions 0003 to 0006 made them (092 regenerates
    # the trigger function when it runs).
    run_script(
        """
        DROP TRIGGER event_schemas_refresh_inline ON pyes.event_schemas;
        DROP FUNCTION pyes.check_new_events(pyes.events[]);
        DROP FUNCTION pyes.raise_invalid_notify_setting(text);
        DROP FUNCTION pyes.unlisten();
        DROP FUNCTION pyes.listen();
        DROP TABLE pyes.listeners;
        """
    )
    for name in ("045_notify.sql", "092_projection_inline.sql", "124_append_schema_check.sql"):
        run_script((sql_dir() / "functions" / name).read_text())
