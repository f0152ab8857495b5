-- Capture, part 4: the backfill. Rows that existed before the capture become one RowImported
-- event each, in primary key order, one batch per call (and per transaction), from a cursor
-- kept in pyes.captured_tables: an interrupted backfill resumes where its last committed
-- batch ended.
--
-- While the application writes:
-- * A batch first reads the key of its last row (no lock), then locks its rows FOR SHARE
--   in key order. A concurrent UPDATE or DELETE of one of them either committed before (its
--   trigger appended the row's history, imported first: the batch sees a stream and skips
--   the row) or waits for the batch to commit (then its trigger sees the RowImported).
-- * A row inserted after the capture started has its RowCreated; the batch skips it.
-- * So each row's history starts with exactly one RowCreated or RowImported.
-- * Rows that move out of the batch's key range meanwhile (a primary key change) are
--   recorded by the trigger; the cursor ends at the range's end, never at a moved row.
-- The batch waits for row locks like any writer; run it with a short lock_timeout (the
-- Python layer uses 2s) and call it again after 55P03 or 40P01, so that it yields to the
-- application rather than hold it up.
CREATE OR REPLACE FUNCTION pyes.capture_backfill_batch(
    p_table regclass,
    p_batch_size integer DEFAULT 1000,
    OUT imported integer,
    OUT skipped integer,
    OUT done boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reg     pyes.captured_tables;
    v_cols    text;
    v_ccols   text;
    v_after   text := '';
    v_hi      jsonb;
    v_row     jsonb;
    v_stream  text;
    v_version bigint;
    v_last    bigint;
    v_table   text;
    v_corr    uuid := pyes.capture_correlation_id();
BEGIN
    IF p_batch_size IS NULL OR p_batch_size NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'invalid backfill batch size %', coalesce(p_batch_size::text, 'NULL')
            USING ERRCODE = 'PE503',
                  DETAIL = 'A backfill batch is 1 to 100000 rows.',
                  HINT = 'Use the default of 1000 unless rows are very large or very small.';
    END IF;
    v_reg := pyes.capture_registered(p_table, true);
    -- One batch of a table at a time: a second backfill waits here, then goes on from the
    -- cursor the first one left.
    SELECT * INTO v_reg FROM pyes.captured_tables c WHERE c.table_oid = p_table FOR UPDATE;
    imported := 0;
    skipped := 0;
    IF v_reg.backfill_done_at IS NOT NULL THEN
        done := true;
        RETURN;
    END IF;
    v_table := format('%I.%I', (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_table),
                      (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = p_table));
    SELECT string_agg(format('t.%I', k.col), ', ' ORDER BY k.ord), string_agg(format('c.%I', k.col), ', ' ORDER BY k.ord)
      INTO v_cols, v_ccols
      FROM unnest(v_reg.key_columns) WITH ORDINALITY AS k(col, ord);
    IF v_reg.backfill_cursor IS NOT NULL THEN
        v_after := format('WHERE (%s) > (SELECT %s FROM jsonb_populate_record(NULL::%s, $1) AS c)', v_cols, v_ccols, p_table);
    END IF;

    -- The batch's last key; NULL if fewer rows are left than a batch: this is the last one.
    EXECUTE format('SELECT pyes.capture_key(%L, to_jsonb(t)) FROM %s AS t %s ORDER BY %s OFFSET %s LIMIT 1',
                   v_reg.key_columns, p_table, v_after, v_cols, p_batch_size - 1)
       INTO v_hi USING v_reg.backfill_cursor;

    FOR v_row IN EXECUTE format('SELECT to_jsonb(t) FROM %s AS t %s %s ORDER BY %s FOR SHARE OF t',
                                p_table, v_after,
                                CASE WHEN v_hi IS NULL THEN ''
                                     ELSE format('%s (%s) <= (SELECT %s FROM jsonb_populate_record(NULL::%s, $2) AS c)',
                                                 CASE WHEN v_after = '' THEN 'WHERE' ELSE 'AND' END, v_cols, v_ccols, p_table) END,
                                v_cols)
                 USING v_reg.backfill_cursor, v_hi
    LOOP
        -- The row is locked: no capture writer can append to its stream until we commit.
        v_stream := pyes.capture_stream_id(v_reg.stream_prefix, v_reg.key_columns, v_row);
        v_version := NULL;
        v_last := NULL;
        SELECT s.version INTO v_version FROM pyes.streams s WHERE s.stream_id = v_stream;
        IF v_version IS NOT NULL AND v_reg.history_epoch > 0 THEN
            SELECT e.position INTO v_last FROM pyes.events e WHERE e.stream_id = v_stream AND e.version = v_version;
        END IF;
        IF v_version IS NULL OR v_last <= v_reg.history_epoch THEN
            PERFORM pyes.append(v_stream, jsonb_build_array(jsonb_build_object(
                'type', 'RowImported',
                'data', jsonb_build_object('key', pyes.capture_key(v_reg.key_columns, v_row),
                                           'row', v_row - v_reg.excluded_columns),
                'metadata', pyes.capture_metadata(v_table, 'import'),
                'correlation_id', v_corr)), coalesce(v_version, 0)::text);
            imported := imported + 1;
        ELSE
            skipped := skipped + 1;
        END IF;
    END LOOP;

    done := v_hi IS NULL;
    IF done AND v_reg.history_epoch > 0 THEN
        -- Captured again after a pause: rows deleted during the pause still live in their
        -- old history. Close those streams with a RowDeleted.
        PERFORM pyes.capture_close_vanished(v_reg, v_table, v_corr);
    END IF;
    UPDATE pyes.captured_tables c
       SET backfill_cursor = coalesce(v_hi, c.backfill_cursor),
           backfill_imported = c.backfill_imported + imported,
           backfill_skipped = c.backfill_skipped + skipped,
           backfill_done_at = CASE WHEN done THEN now() END
     WHERE c.table_oid = p_table;
END;
$$;

-- After a re-capture: every stream of the table whose history ended before the new capture
-- with the row alive, and whose row no longer exists, gets a RowDeleted (metadata
-- "operation": "vanished"): the row was deleted while the table was not captured. The
-- stream's row is locked first, so an INSERT of that key racing with this is recorded after.
CREATE OR REPLACE FUNCTION pyes.capture_close_vanished(p_reg pyes.captured_tables, p_table text, p_correlation_id uuid)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_stream  record;
    v_last    record;
    v_exists  boolean;
    v_cols    text;
    v_ccols   text;
    v_closed  integer := 0;
BEGIN
    SELECT string_agg(format('t.%I', k.col), ', ' ORDER BY k.ord), string_agg(format('c.%I', k.col), ', ' ORDER BY k.ord)
      INTO v_cols, v_ccols
      FROM unnest(p_reg.key_columns) WITH ORDINALITY AS k(col, ord);
    FOR v_stream IN SELECT s.stream_id FROM pyes.streams s WHERE s.category = p_reg.stream_prefix ORDER BY s.stream_id LOOP
        PERFORM 1 FROM pyes.streams s WHERE s.stream_id = v_stream.stream_id FOR UPDATE;
        SELECT e.version, e.position, e.type, e.data INTO v_last
          FROM pyes.events e WHERE e.stream_id = v_stream.stream_id ORDER BY e.version DESC LIMIT 1;
        CONTINUE WHEN v_last.position > p_reg.history_epoch OR v_last.type = 'RowDeleted'
                   OR v_last.type NOT IN ('RowCreated', 'RowImported', 'RowUpdated')
                   OR jsonb_typeof(v_last.data -> 'key') IS DISTINCT FROM 'object';
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s AS t WHERE (%s) = (SELECT %s FROM jsonb_populate_record(NULL::%s, $1) AS c))',
                       p_reg.table_oid, v_cols, v_ccols, p_reg.table_oid)
           INTO v_exists USING v_last.data -> 'key';
        CONTINUE WHEN v_exists;
        PERFORM pyes.append(v_stream.stream_id, jsonb_build_array(jsonb_build_object(
            'type', 'RowDeleted',
            'data', jsonb_build_object('key', v_last.data -> 'key'),
            'metadata', pyes.capture_metadata(p_table, 'vanished'),
            'correlation_id', p_correlation_id)), v_last.version::text);
        v_closed := v_closed + 1;
    END LOOP;
    RETURN v_closed;
END;
$$;
