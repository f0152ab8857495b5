"""event schemas: schema versions, upcasters applied by the read functions, the append check

Revision ID: pyes_0006
Revises: pyes_0005
Create Date: 2026-11-26
"""

from pyes.migrate import run_script
from pyes.sqlfiles import revision_sql, sql_dir

revision = "pyes_0006"
down_revision = "pyes_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(revision_sql(revision))


def downgrade() -> None:
    # Everything this revision created, and the view and projection hooks it redefined put
    # back as earlier revisions made them (the read functions select from the view), before
    # what they used is dropped.
    run_script((sql_dir() / "functions" / "012_recorded_events.sql").read_text())
    run_script(
        """
        DROP TRIGGER projections_tag_reset ON pyes.projections;
        DROP TRIGGER projections_tag_registered ON pyes.projections;
        DROP FUNCTION pyes.tag_projection_schema_versions();
        """
    )
    run_script((sql_dir() / "functions" / "091_projection_apply.sql").read_text())
    run_script(
        """
        DROP TRIGGER events_check_schema ON pyes.events;
        DROP TRIGGER event_schemas_versions ON pyes.event_schemas;
        DROP TRIGGER event_upcasters_versions ON pyes.event_upcasters;
        DROP FUNCTION pyes.schema_drift();
        DROP FUNCTION pyes.upcast_path_problem(text, integer);
        DROP FUNCTION pyes.check_event_schemas();
        DROP FUNCTION pyes.upcast_events(pyes.events[]);
        DROP FUNCTION pyes.upcast_event(pyes.events);
        DROP FUNCTION pyes.upcast(text, integer, jsonb);
        DROP FUNCTION pyes.current_schema_versions(text[]);
        DROP FUNCTION pyes.current_schema_version(text);
        DROP FUNCTION pyes.refresh_event_type_versions();
        DROP FUNCTION pyes.unregister_upcaster(text, integer);
        DROP FUNCTION pyes.register_upcaster(text, integer, regprocedure, text, text, boolean);
        DROP FUNCTION pyes.invalid_upcaster(text, integer, text, text);
        DROP FUNCTION pyes.check_event_data(jsonb, jsonb, text);
        DROP FUNCTION pyes.json_type_matches(jsonb, jsonb);
        DROP FUNCTION pyes.unregister_event_schema(text, integer);
        DROP FUNCTION pyes.register_event_schema(text, integer, jsonb, text, boolean);
        DROP FUNCTION pyes.validate_json_schema(text, integer, jsonb);
        DROP FUNCTION pyes.validate_schema_type_name(text);
        DROP FUNCTION pyes.record_projection_schema_versions(text, integer);
        DROP TABLE pyes.projection_schema_versions;
        DROP TABLE pyes.event_type_versions;
        DROP TABLE pyes.event_upcasters;
        DROP TABLE pyes.event_schemas;
        """
    )
