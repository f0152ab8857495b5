-- Capture, part 6: audited undo. pyes.capture_restore puts a row back as it was at a moment
-- with an ordinary UPDATE (or an INSERT, if the row has been deleted since), which the
-- capture trigger records like any change, with the actor, the reason and the moment
-- restored to in the event's metadata. It runs with the caller's privileges.
--
-- Only captured columns are restored: excluded columns keep their current values (or take
-- their defaults on a re-INSERT), and so do columns added after the moment. Generated
-- columns are left to PostgreSQL; identity columns are written with OVERRIDING SYSTEM VALUE.
-- Returns 'updated', 'inserted', or 'unchanged' (the row already is as it was: nothing is
-- written).
CREATE OR REPLACE FUNCTION pyes.capture_restore(
    p_table regclass,
    p_key jsonb,
    p_at timestamptz,
    p_reason text,
    p_actor text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reg      pyes.captured_tables := pyes.capture_registered(p_table, true);
    v_actor    text := coalesce(nullif(btrim(p_actor), ''), nullif(btrim(current_setting('pyes.actor', true)), ''));
    v_stream   text;
    v_state    jsonb;
    v_current  jsonb;
    v_cols     text[];
    v_keycond  text;
    v_set      text;
    v_list     text;
    v_saved    text[];
    v_count    integer;
    v_result   text;
BEGIN
    PERFORM pyes.capture_check_moment(p_at, 'pyes.capture_restore');
    IF coalesce(btrim(p_reason), '') = '' OR v_actor IS NULL THEN
        RAISE EXCEPTION 'a restore needs a reason and an actor'
            USING ERRCODE = 'PE508',
                  DETAIL = format('pyes.capture_restore(%s, %s, ...) got reason %s and actor %s (the setting pyes.actor is %s).',
                                  p_table, p_key, coalesce(quote_literal(p_reason), 'NULL'), coalesce(quote_literal(p_actor), 'NULL'),
                                  coalesce(quote_literal(nullif(current_setting('pyes.actor', true), '')), 'unset')),
                  HINT = 'Say why the row is restored and who decided it: both go into the audit trail.';
    END IF;
    v_stream := pyes.capture_row_stream(v_reg, p_key);
    SELECT f.state INTO v_state FROM pyes.capture_fold(v_reg.stream_prefix, v_stream, p_at) f;
    IF v_state IS NULL THEN
        RAISE EXCEPTION 'nothing to restore: row % of % had no state at %', p_key, p_table, p_at
            USING ERRCODE = 'PE507',
                  DETAIL = format('Stream %L has no row at that moment: the row did not exist yet, was deleted, or its history had not started (it starts at its RowCreated or RowImported).', v_stream),
                  HINT = format('See the row''s history with SELECT * FROM pyes.capture_history(%L, %L).', p_table::text, p_key::text);
    END IF;

    -- The columns to write: those of the table now, captured, not generated, present then.
    SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO v_cols
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       AND a.attname <> ALL (v_reg.excluded_columns) AND v_state ? a.attname;
    SELECT string_agg(format('t.%I = c.%I', k.col, k.col), ' AND ') INTO v_keycond
      FROM unnest(v_reg.key_columns) AS k(col);

    EXECUTE format('SELECT to_jsonb(t) FROM %s AS t, jsonb_populate_record(NULL::%s, $1) AS c WHERE %s FOR UPDATE OF t',
                   p_table, p_table, v_keycond)
       INTO v_current USING v_state;

    -- The change is recorded with these; the caller's own settings come back afterwards.
    v_saved := ARRAY[current_setting('pyes.reason', true), current_setting('pyes.actor', true),
                     current_setting('pyes.restored_to', true)];
    PERFORM set_config('pyes.reason', p_reason, true);
    PERFORM set_config('pyes.actor', v_actor, true);
    PERFORM set_config('pyes.restored_to', to_jsonb(p_at) #>> '{}', true);

    IF v_current IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM unnest(v_cols) AS x(col) WHERE (v_current -> x.col) IS DISTINCT FROM (v_state -> x.col)) THEN
            v_result := 'unchanged';
        ELSE
            SELECT string_agg(format('%I = c.%I', x.col, x.col), ', ') INTO v_set
              FROM unnest(v_cols) AS x(col) WHERE x.col <> ALL (v_reg.key_columns);
            EXECUTE format('UPDATE %s AS t SET %s FROM jsonb_populate_record(NULL::%s, $1) AS c WHERE %s',
                           p_table, v_set, p_table, v_keycond) USING v_state;
            GET DIAGNOSTICS v_count = ROW_COUNT;
            v_result := 'updated';
        END IF;
    ELSE
        SELECT string_agg(format('%I', x.col), ', ') INTO v_list FROM unnest(v_cols) AS x(col);
        EXECUTE format('INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM jsonb_populate_record(NULL::%s, $1) AS c',
                       p_table, v_list,
                       (SELECT string_agg(format('c.%I', x.col), ', ') FROM unnest(v_cols) AS x(col)),
                       p_table) USING v_state;
        v_result := 'inserted';
    END IF;

    PERFORM set_config('pyes.reason', coalesce(v_saved[1], ''), true);
    PERFORM set_config('pyes.actor', coalesce(v_saved[2], ''), true);
    PERFORM set_config('pyes.restored_to', coalesce(v_saved[3], ''), true);
    RETURN v_result;
END;
$$;
