"""projections: registry, inline and asynchronous projections, rebuild, versions, temporal

Revision ID: pyes_0003
Revises: pyes_0002
Create Date: 2026-11-26
"""

from pyes.migrate import run_script
from pyes.sqlfiles import revision_sql

revision = "pyes_0003"
down_revision = "pyes_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(revision_sql(revision))


def downgrade() -> None:
    # Everything this revision created, listed so that nothing of an application's is touched.
    run_script(
        """
        DROP TRIGGER events_project_inline ON pyes.events;
        DROP TRIGGER events_notify ON pyes.events;
        DROP TRIGGER projections_refresh_inline ON pyes.projections;
        DROP FUNCTION pyes.projections_changed();
        DROP FUNCTION pyes.refresh_inline_dispatch();
        DROP FUNCTION pyes.inline_dispatch_source();
        DROP FUNCTION pyes.inline_projection_blocks();
        DROP FUNCTION pyes.inline_dispatch_current();
        DROP FUNCTION pyes.raise_inline_failure(text,integer,pyes.events[],text,text,text);
        DROP FUNCTION pyes.advance_projection(text,integer,text,integer,boolean,xid8);
        DROP FUNCTION pyes.apply_batch_or_fail(pyes.projections,pyes.events[]);
        DROP FUNCTION pyes.apply_projection(pyes.projections,pyes.events[],text,boolean);
        DROP FUNCTION pyes.call_projection_handler(pyes.projections,pyes.events[],text);
        DROP FUNCTION pyes.check_projection_handler(text,regprocedure,oid[],text);
        DROP FUNCTION pyes.handler_takes_batch(regprocedure);
        DROP FUNCTION pyes.claim_projection_batch(text,integer,integer,xid8);
        DROP FUNCTION pyes.effective_versions(text,bigint);
        DROP FUNCTION pyes.fail_projection(text,integer,uuid,text,text);
        DROP FUNCTION pyes.failing_event(pyes.projections,pyes.events[],text);
        DROP FUNCTION pyes.handler_name(regprocedure);
        DROP FUNCTION pyes.upcast_for_projection(pyes.events[]);
        DROP FUNCTION pyes.projection_type_names(text[]);
        DROP FUNCTION pyes.invalid_projection(text,text,text);
        DROP FUNCTION pyes.invalid_projection_argument(text,text,text,text);
        DROP FUNCTION pyes.lock_appends(interval);
        DROP FUNCTION pyes.notify_events();
        DROP FUNCTION pyes.pause_projection(text,integer);
        DROP FUNCTION pyes.point_views(pyes.projections);
        DROP FUNCTION pyes.project_as_of(text,timestamp with time zone,text,integer);
        DROP FUNCTION pyes.project_inline();
        DROP FUNCTION pyes.projection_batch(pyes.projections,integer,xid8);
        DROP FUNCTION pyes.last_event_below(pyes.projections,xid8);
        DROP FUNCTION pyes.projection_row(text,integer,boolean);
        DROP FUNCTION pyes.projection_status(text);
        DROP FUNCTION pyes.register_projection(text,regprocedure,text[],text,text[],text,integer,text,regprocedure,text[]);
        DROP FUNCTION pyes.reset_projection(text,integer);
        DROP FUNCTION pyes.project_rewind(pyes.projections,pyes.events,text,boolean);
        DROP FUNCTION pyes.resume_projection(text,integer);
        DROP FUNCTION pyes.run_projection(text,integer,integer);
        DROP FUNCTION pyes.stream_events_for(pyes.projections,text,bigint[],boolean);
        DROP FUNCTION pyes.switch_projection(text,integer);
        DROP FUNCTION pyes.turn_inline(pyes.projections);
        DROP FUNCTION pyes.unregister_projection(text,integer,boolean);
        DROP FUNCTION pyes.validate_projection(text,integer,text,regprocedure,regprocedure,text[],text,text[],text[],text);
        DROP FUNCTION pyes.xmin_holder();
        DROP TABLE pyes.projections;
        """
    )
