"""capture: history of existing tables through triggers, backfill, time travel and undo

Revision ID: pyes_0005
Revises: pyes_0004
Create Date: 2026-11-26
"""

from pyes.migrate import run_script
from pyes.sqlfiles import revision_sql

revision = "pyes_0005"
down_revision = "pyes_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_script(revision_sql(revision))


def downgrade() -> None:
    # Everything this revision created (the table, the functions), and nothing else.
    # Captures still active would leave triggers on the application's tables that call the
    # functions dropped below: remove them first (their history, in pyes.events, stays).
    run_script(
        """
        DO $$
        DECLARE
            v_table regclass;
        BEGIN
            FOR v_table IN SELECT c.table_oid FROM pyes.captured_tables c
                            WHERE c.removed_at IS NULL
                              AND EXISTS (SELECT 1 FROM pg_catalog.pg_class r WHERE r.oid = c.table_oid) LOOP
                PERFORM pyes.capture_remove(v_table);
            END LOOP;
        END;
        $$;
        DROP FUNCTION pyes.capture_restore(regclass, jsonb, timestamptz, text, text);
        DROP FUNCTION pyes.capture_history(regclass, jsonb);
        DROP FUNCTION pyes.capture_rows_at(regclass, timestamptz);
        DROP FUNCTION pyes.capture_row_at(regclass, jsonb, timestamptz);
        DROP FUNCTION pyes.capture_check_moment(timestamptz, text);
        DROP FUNCTION pyes.capture_fold(text, text, timestamptz);
        DROP FUNCTION pyes.capture_close_vanished(pyes.captured_tables, text, uuid);
        DROP FUNCTION pyes.capture_backfill_batch(regclass, integer);
        DROP FUNCTION pyes.capture_list();
        DROP FUNCTION pyes.capture_remove(regclass);
        DROP FUNCTION pyes.capture_add(regclass, text[], text);
        DROP FUNCTION pyes.capture_refuse_truncate();
        DROP FUNCTION pyes.capture_append(text, bigint, jsonb, jsonb, text, text, jsonb, uuid);
        DROP FUNCTION pyes.capture_write(text, jsonb, bigint);
        DROP FUNCTION pyes.capture_row();
        DROP FUNCTION pyes.capture_row_stream(pyes.captured_tables, jsonb);
        DROP FUNCTION pyes.capture_registered(regclass, boolean);
        DROP FUNCTION pyes.capture_correlation_id();
        DROP FUNCTION pyes.capture_metadata(text, text);
        DROP FUNCTION pyes.capture_key(text[], jsonb);
        DROP FUNCTION pyes.capture_stream_id(text, text[], jsonb);
        DROP FUNCTION pyes.capture_key_part(text);
        DROP TABLE pyes.captured_tables;
        """
    )
