-- Capture, part 3: starting, changing, stopping and listing captures.

-- Captures p_table: installs the triggers and registers it. Called again on a captured
-- table, it changes the excluded columns (the prefix stays). Called on a table whose capture
-- was removed, it captures it again: each row's history then resumes with a RowImported
-- before its next change (or from the backfill), since the table may have changed meanwhile.
--
-- CREATE TRIGGER waits for the table's running writers to finish (and blocks new ones for
-- that instant), so every write that committed without the trigger is visible to a backfill
-- started afterwards.
CREATE OR REPLACE FUNCTION pyes.capture_add(
    p_table regclass,
    p_exclude text[] DEFAULT '{}',
    p_stream_prefix text DEFAULT NULL)
RETURNS pyes.captured_tables
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_class    record;
    v_keys     text[];
    v_exclude  text[];
    v_unknown  text[];
    v_prefix   text;
    v_reg      pyes.captured_tables;
    v_other    regclass;
    v_epoch    bigint := 0;
BEGIN
    IF p_table IS NULL THEN
        RAISE EXCEPTION 'cannot capture NULL'
            USING ERRCODE = 'PE502',
                  DETAIL = 'pyes.capture_add needs the table to capture.',
                  HINT = 'Pass a table name, such as ''public.users''.';
    END IF;
    SELECT c.relname, c.relkind, c.relpersistence, c.relispartition, n.nspname INTO v_class
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    IF v_class.relkind NOT IN ('r', 'p') OR v_class.relpersistence = 't' OR v_class.relispartition
       OR v_class.nspname IN ('pyes', 'pg_catalog', 'information_schema') OR v_class.nspname LIKE 'pg\_toast%' THEN
        RAISE EXCEPTION 'cannot capture %', p_table
            USING ERRCODE = 'PE502',
                  DETAIL = CASE
                      WHEN v_class.relkind NOT IN ('r', 'p') THEN format('%s is a %s, not a table.', p_table,
                          CASE v_class.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                               WHEN 'f' THEN 'foreign table' WHEN 'S' THEN 'sequence' WHEN 'i' THEN 'index'
                               ELSE 'relation of kind ' || v_class.relkind::text END)
                      WHEN v_class.relpersistence = 't' THEN format('%s is a temporary table: its rows vanish, its history would not.', p_table)
                      WHEN v_class.relispartition THEN format('%s is a partition of another table.', p_table)
                      ELSE format('%s belongs to schema %s, which pyes does not capture.', p_table, v_class.nspname) END,
                  HINT = CASE WHEN v_class.relispartition THEN 'Capture the partitioned table: its trigger covers every partition.'
                              ELSE 'Capture an ordinary (or partitioned) table of your application.' END;
    END IF;

    SELECT array_agg(a.attname::text ORDER BY k.ord) INTO v_keys
      FROM pg_catalog.pg_index i
      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = p_table AND i.indisprimary;
    IF v_keys IS NULL THEN
        RAISE EXCEPTION 'table % has no primary key', p_table
            USING ERRCODE = 'PE501',
                  DETAIL = format('pyes names each captured row''s stream after its primary key, and %s has none.', p_table),
                  HINT = format('Add one (ALTER TABLE %s ADD PRIMARY KEY (...), or an identity column), then capture it.', p_table);
    END IF;

    -- The excluded columns: existing columns, not part of the key; sorted, without repeats.
    SELECT coalesce(array_agg(DISTINCT x.col ORDER BY x.col), '{}') INTO v_exclude
      FROM unnest(coalesce(p_exclude, '{}')) AS x(col);
    SELECT array_agg(x.col ORDER BY x.col) INTO v_unknown
      FROM unnest(v_exclude) AS x(col)
     WHERE x.col IS NULL OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                                         WHERE a.attrelid = p_table AND a.attname = x.col AND a.attnum > 0 AND NOT a.attisdropped);
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'cannot exclude unknown column(s) of %', p_table
            USING ERRCODE = 'PE503',
                  DETAIL = format('%s has no column(s) %s.', p_table, array_to_string(v_unknown, ', ', 'NULL')),
                  HINT = 'Name columns exactly as the table does (case matters for quoted names).';
    END IF;
    IF v_exclude && v_keys THEN
        RAISE EXCEPTION 'cannot exclude a primary key column of %', p_table
            USING ERRCODE = 'PE503',
                  DETAIL = format('Column(s) %s are part of the primary key (%s), which names the row''s stream and is in every event.',
                                  array_to_string(ARRAY(SELECT unnest(v_exclude) INTERSECT SELECT unnest(v_keys)), ', '),
                                  array_to_string(v_keys, ', ')),
                  HINT = 'Exclude only columns outside the primary key.';
    END IF;

    SELECT * INTO v_reg FROM pyes.captured_tables c WHERE c.table_oid = p_table FOR UPDATE;
    v_prefix := coalesce(p_stream_prefix, v_reg.stream_prefix, v_class.relname);
    IF FOUND AND v_prefix <> v_reg.stream_prefix THEN
        RAISE EXCEPTION 'the stream prefix of % cannot change', p_table
            USING ERRCODE = 'PE503',
                  DETAIL = format('%s was captured with stream prefix %L; its history is in the streams %L.',
                                  p_table, v_reg.stream_prefix, v_reg.stream_prefix || '-<key>'),
                  HINT = 'Leave the prefix out, or pass the same one.';
    END IF;
    IF v_prefix !~ '^[A-Za-z_][A-Za-z0-9_.:]*$' OR char_length(v_prefix) > 63 THEN
        RAISE EXCEPTION 'invalid stream prefix %', quote_literal(v_prefix)
            USING ERRCODE = 'PE503',
                  DETAIL = 'A stream prefix is the category of the rows'' streams: 1 to 63 characters, a letter or _, then letters, digits, _ . or :, and no ''-''.',
                  HINT = 'Pass a prefix of your own, such as ''users''.';
    END IF;
    SELECT c.table_oid INTO v_other FROM pyes.captured_tables c
     WHERE c.stream_prefix = v_prefix AND c.table_oid <> p_table;
    IF FOUND THEN
        RAISE EXCEPTION 'stream prefix % is taken', quote_literal(v_prefix)
            USING ERRCODE = 'PE503',
                  DETAIL = format('Table %s is (or was) captured with stream prefix %L.', v_other, v_prefix),
                  HINT = 'Pass another prefix for this table.';
    END IF;

    -- Streams of this category written before now belong to another history (an earlier
    -- capture of this table, or the application's own events): rows import themselves again.
    IF v_reg.table_oid IS NULL OR v_reg.removed_at IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM pyes.streams s WHERE s.category = v_prefix) THEN
            v_epoch := coalesce((SELECT max(e.position) FROM pyes.events e), 0);
        END IF;
    ELSE
        v_epoch := v_reg.history_epoch;
    END IF;

    EXECUTE format('CREATE OR REPLACE TRIGGER pyes_capture AFTER INSERT OR UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION pyes.capture_row(%L, %L, %L, %L)',
                   p_table, v_prefix, v_keys, v_exclude, v_epoch);
    EXECUTE format('CREATE OR REPLACE TRIGGER pyes_capture_truncate BEFORE TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION pyes.capture_refuse_truncate()', p_table);

    IF v_reg.table_oid IS NULL THEN
        INSERT INTO pyes.captured_tables AS c (table_oid, table_name, stream_prefix, key_columns, excluded_columns,
                                               trigger_name, history_epoch)
        VALUES (p_table, p_table::text, v_prefix, v_keys, v_exclude, 'pyes_capture', v_epoch)
        RETURNING c.* INTO v_reg;
    ELSIF v_reg.removed_at IS NOT NULL THEN
        UPDATE pyes.captured_tables c
           SET table_name = p_table::text, key_columns = v_keys, excluded_columns = v_exclude, history_epoch = v_epoch,
               captured_at = now(), captured_by = current_user, removed_at = NULL, backfill_cursor = NULL,
               backfill_imported = 0, backfill_skipped = 0, backfill_done_at = NULL
         WHERE c.table_oid = p_table
        RETURNING c.* INTO v_reg;
    ELSE
        UPDATE pyes.captured_tables c
           SET table_name = p_table::text, key_columns = v_keys, excluded_columns = v_exclude
         WHERE c.table_oid = p_table
        RETURNING c.* INTO v_reg;
    END IF;
    RETURN v_reg;
END;
$$;

-- Stops capturing p_table: drops its triggers. The history stays (pyes.events is immutable),
-- and so does the registry row, marked removed, for time travel by table name.
CREATE OR REPLACE FUNCTION pyes.capture_remove(p_table regclass)
RETURNS pyes.captured_tables
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reg pyes.captured_tables := pyes.capture_registered(p_table, true);
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = p_table) THEN
        EXECUTE format('DROP TRIGGER IF EXISTS pyes_capture ON %s', p_table);
        EXECUTE format('DROP TRIGGER IF EXISTS pyes_capture_truncate ON %s', p_table);
    END IF;
    UPDATE pyes.captured_tables c SET removed_at = now() WHERE c.table_oid = p_table
    RETURNING c.* INTO v_reg;
    RETURN v_reg;
END;
$$;

-- Every table that is or was captured, with what an operator checks: is the trigger there,
-- are excluded columns still columns of the table (a renamed one would be captured), how
-- far the backfill is.
CREATE OR REPLACE FUNCTION pyes.capture_list()
RETURNS TABLE (
    table_name       text,
    stream_prefix    text,
    key_columns      text[],
    excluded_columns text[],
    status           text,
    missing_columns  text[],
    backfill         text,
    imported         bigint,
    skipped          bigint,
    captured_at      timestamptz,
    removed_at       timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT CASE WHEN t.oid IS NULL THEN c.table_name ELSE c.table_oid::text END,
           c.stream_prefix, c.key_columns, c.excluded_columns,
           CASE WHEN t.oid IS NULL THEN 'dropped'
                WHEN c.removed_at IS NOT NULL THEN 'removed'
                WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                                  WHERE g.tgrelid = c.table_oid AND g.tgname = c.trigger_name AND g.tgenabled <> 'D')
                    THEN 'trigger missing or disabled'
                ELSE 'active' END,
           ARRAY(SELECT x.col FROM unnest(c.key_columns || c.excluded_columns) AS x(col)
                  WHERE t.oid IS NOT NULL AND NOT EXISTS (
                        SELECT 1 FROM pg_catalog.pg_attribute a
                         WHERE a.attrelid = c.table_oid AND a.attname = x.col AND a.attnum > 0 AND NOT a.attisdropped)
                  ORDER BY x.col),
           CASE WHEN c.backfill_done_at IS NOT NULL THEN 'done'
                WHEN c.backfill_cursor IS NOT NULL THEN 'after ' || c.backfill_cursor::text
                ELSE 'not started' END,
           c.backfill_imported, c.backfill_skipped, c.captured_at, c.removed_at
      FROM pyes.captured_tables c
      LEFT JOIN pg_catalog.pg_class t ON t.oid = c.table_oid
     ORDER BY c.stream_prefix;
END;
$$;
