-- Capture: the history of an application's existing tables, kept by triggers that append an
-- event for every INSERT, UPDATE and DELETE (functions/110_capture.sql .. 115_capture_restore.sql,
-- docs/adopting.md). One row per table that is or was captured. A removed capture keeps its
-- row (with removed_at set), so that the table's history can still be read by table name.
CREATE TABLE pyes.captured_tables (
    -- The captured table. A regclass follows renames; the name at capture time is kept too.
    table_oid         regclass    PRIMARY KEY,
    table_name        text        NOT NULL,
    -- Streams are "<stream_prefix>-<key>", so the prefix is the streams' category.
    stream_prefix     text        NOT NULL UNIQUE
                                  CHECK (stream_prefix ~ '^[A-Za-z_][A-Za-z0-9_.:]*$' AND char_length(stream_prefix) <= 63),
    -- The primary key's columns, in key order.
    key_columns       text[]      NOT NULL CHECK (cardinality(key_columns) >= 1),
    -- Columns whose values never go into an event (passwords, tokens).
    excluded_columns  text[]      NOT NULL DEFAULT '{}',
    trigger_name      text        NOT NULL,
    -- History before this global position belongs to an earlier capture of the table (0:
    -- none): a stream whose last event is at or below it is imported again before its next
    -- change, because the table may have changed while it was not captured.
    history_epoch     bigint      NOT NULL DEFAULT 0 CHECK (history_epoch >= 0),
    captured_at       timestamptz NOT NULL DEFAULT now(),
    captured_by       text        NOT NULL DEFAULT current_user,
    removed_at        timestamptz,
    -- Backfill: the key of the last row imported (as to_jsonb of the key columns), how many
    -- rows were imported or already had history, and when it finished.
    backfill_cursor   jsonb,
    backfill_imported bigint      NOT NULL DEFAULT 0,
    backfill_skipped  bigint      NOT NULL DEFAULT 0,
    backfill_done_at  timestamptz
);

COMMENT ON TABLE pyes.captured_tables IS 'Tables whose changes are captured as events. Written by pyes.capture_add, pyes.capture_remove and pyes.capture_backfill_batch.';
