-- Capture, part 1: how a captured row is named and described (docs/adopting.md).
--
-- A captured row's stream is "<stream prefix>-<key>". <key> is the text of each primary key
-- column (as to_jsonb gives it: 42, 7f1c...-uuid, 2026-11-24T15:00:00+00:00), with '%', ':'
-- and control characters written as %XX (their UTF-8 bytes in hex), the columns joined by
-- ':' in key order. So users(id=42) is "users-42", and order_lines(order_id=7, line=3) is
-- "order_lines-7:3": a ':' inside a value is "%3A", so the parts split back unambiguously.

-- One key value, escaped as above.
CREATE OR REPLACE FUNCTION pyes.capture_key_part(p_value text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_out text := '';
    v_ch  text;
BEGIN
    IF p_value IS NULL OR p_value !~ '[%:[:cntrl:]]' THEN
        RETURN p_value;
    END IF;
    FOREACH v_ch IN ARRAY regexp_split_to_array(p_value, '') LOOP
        IF v_ch ~ '[%:[:cntrl:]]' THEN
            v_out := v_out || upper(regexp_replace(encode(convert_to(v_ch, 'UTF8'), 'hex'), '(..)', '%\1', 'g'));
        ELSE
            v_out := v_out || v_ch;
        END IF;
    END LOOP;
    RETURN v_out;
END;
$$;

-- The stream of the row p_row (to_jsonb of the row, or any object holding its key columns).
CREATE OR REPLACE FUNCTION pyes.capture_stream_id(p_prefix text, p_keys text[], p_row jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_parts text[];
BEGIN
    SELECT array_agg(pyes.capture_key_part(p_row ->> k.col) ORDER BY k.ord) INTO v_parts
      FROM unnest(p_keys) WITH ORDINALITY AS k(col, ord);
    IF v_parts IS NULL OR array_position(v_parts, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'invalid row key for stream prefix %', quote_literal(p_prefix)
            USING ERRCODE = 'PE506',
                  DETAIL = format('The key columns are %s; the row or key given has %s.',
                                  array_to_string(p_keys, ', '), coalesce(p_row::text, 'NULL')),
                  HINT = 'Give a value for every primary key column. If a key column was renamed, run pyes.capture_add again.';
    END IF;
    RETURN p_prefix || '-' || array_to_string(v_parts, ':');
END;
$$;

-- The key columns of p_row as an object, in key order: the "key" of every captured event.
CREATE OR REPLACE FUNCTION pyes.capture_key(p_keys text[], p_row jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT jsonb_object_agg(k.col, p_row -> k.col) FROM unnest(p_keys) AS k(col));
END;
$$;

-- The event metadata of a captured change: who (database role, application_name, and the
-- actor the application set), why (pyes.reason) and, for a restore, the moment restored to.
-- Settings the application did not set are left out.
CREATE OR REPLACE FUNCTION pyes.capture_metadata(p_table text, p_operation text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN jsonb_strip_nulls(jsonb_build_object(
        'table', p_table,
        'operation', p_operation,
        'db_role', current_user::text,
        'application_name', nullif(current_setting('application_name', true), ''),
        'actor', nullif(current_setting('pyes.actor', true), ''),
        'reason', nullif(current_setting('pyes.reason', true), ''),
        'restored_to', nullif(current_setting('pyes.restored_to', true), '')));
END;
$$;

-- The correlation id the application set with SET LOCAL pyes.correlation_id = '<uuid>', or
-- NULL. A value that is not a uuid is refused (PE505): the change is not written.
CREATE OR REPLACE FUNCTION pyes.capture_correlation_id()
RETURNS uuid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_raw text := nullif(current_setting('pyes.correlation_id', true), '');
BEGIN
    IF v_raw IS NULL THEN
        RETURN NULL;
    END IF;
    IF v_raw !~ '^(\{[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}|[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12})$' THEN
        RAISE EXCEPTION 'pyes.correlation_id is not a uuid: %', v_raw
            USING ERRCODE = 'PE505',
                  DETAIL = 'A captured change takes its correlation id from the setting pyes.correlation_id, which must be empty or a uuid.',
                  HINT = 'SET LOCAL pyes.correlation_id = ''<uuid of the request>'', or leave it unset.';
    END IF;
    RETURN v_raw::uuid;
END;
$$;

-- The registry row of a table; PE504 if it is not captured (p_active) or was never captured.
CREATE OR REPLACE FUNCTION pyes.capture_registered(p_table regclass, p_active boolean)
RETURNS pyes.captured_tables
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reg pyes.captured_tables;
BEGIN
    SELECT * INTO v_reg FROM pyes.captured_tables c WHERE c.table_oid = p_table;
    IF NOT FOUND OR (p_active AND v_reg.removed_at IS NOT NULL) THEN
        RAISE EXCEPTION 'table % is not captured', coalesce(p_table::text, 'NULL')
            USING ERRCODE = 'PE504',
                  DETAIL = CASE WHEN NOT FOUND THEN format('Table %s has never been captured, so pyes has no history of it.', coalesce(p_table::text, 'NULL'))
                                ELSE format('The capture of table %s was removed on %s; its history is kept.', p_table, v_reg.removed_at) END,
                  HINT = CASE WHEN NOT FOUND OR p_active THEN 'Capture it first: SELECT pyes.capture_add(''<table>'').'
                              ELSE 'Time travel and history still work on it; capture it again to record new changes.' END;
    END IF;
    RETURN v_reg;
END;
$$;

-- The stream of a row of a captured table, from a key given as an object of the key
-- columns ('{"id": 42}'), an array of their values in key order ('[7, 3]'), or a single
-- value for a one-column key ('42'). Values are read with the columns' types, so '"42"' and
-- '42' name the same row of an integer key. PE506 if the key does not fit.
CREATE OR REPLACE FUNCTION pyes.capture_row_stream(p_reg pyes.captured_tables, p_key jsonb)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key  jsonb;
    v_n    integer := cardinality(p_reg.key_columns);
BEGIN
    IF jsonb_typeof(p_key) = 'object' THEN
        v_key := p_key;
    ELSIF jsonb_typeof(p_key) = 'array' AND jsonb_array_length(p_key) = v_n THEN
        SELECT jsonb_object_agg(k.col, p_key -> (k.ord::integer - 1)) INTO v_key
          FROM unnest(p_reg.key_columns) WITH ORDINALITY AS k(col, ord);
    ELSIF jsonb_typeof(p_key) IN ('string', 'number', 'boolean') AND v_n = 1 THEN
        v_key := jsonb_build_object(p_reg.key_columns[1], p_key);
    END IF;
    IF v_key IS NULL OR NOT (v_key ?& p_reg.key_columns) OR (SELECT count(*) FROM jsonb_object_keys(v_key)) <> v_n
       OR EXISTS (SELECT 1 FROM jsonb_each(v_key) e WHERE jsonb_typeof(e.value) = 'null') THEN
        RAISE EXCEPTION 'invalid row key % for table %', coalesce(p_key::text, 'NULL'), p_reg.table_oid
            USING ERRCODE = 'PE506',
                  DETAIL = format('The primary key of %s is (%s); give a value for each of these columns and nothing else.',
                                  p_reg.table_oid, array_to_string(p_reg.key_columns, ', ')),
                  HINT = format('Pass an object such as %s, or an array of the values in key order.',
                                (SELECT jsonb_object_agg(k.col, '...') FROM unnest(p_reg.key_columns) AS k(col)));
    END IF;
    -- Read the values with the columns' types, as the trigger saw them (to_jsonb of the row).
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = p_reg.table_oid) THEN
        EXECUTE format('SELECT to_jsonb(c) FROM jsonb_populate_record(NULL::%s, $1) AS c', p_reg.table_oid)
           INTO v_key USING v_key;
    END IF;
    RETURN pyes.capture_stream_id(p_reg.stream_prefix, p_reg.key_columns, v_key);
END;
$$;
