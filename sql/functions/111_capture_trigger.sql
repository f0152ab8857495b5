-- Capture, part 2: the triggers that pyes.capture_add installs on a captured table.
--
-- Every INSERT, UPDATE and DELETE appends, in the same transaction, through pyes.append (so
-- its checks, the stream lock and the gap-free global order hold), one event to the row's
-- stream:
--   RowCreated  {"key": {...}, "row": {...}}                       an INSERT
--   RowUpdated  {"key": {...}, "changes": {"col": {"old": x, "new": y}, ...},
--                "redacted": ["password"]}                         only the changed columns;
--                                                                   "redacted" lists changed
--                                                                   excluded columns, if any
--   RowDeleted  {"key": {...}, "row": {...}}                       a DELETE (the row as it was)
--   RowImported {"key": {...}, "row": {...}}                       a row that existed before
--                                                                   the capture (backfill)
-- An UPDATE that changes the primary key is a RowDeleted ("moved_to": new key) in the old
-- row's stream and a RowCreated ("moved_from": old key) in the new one. An UPDATE that
-- changes nothing appends nothing. Excluded columns are never written to events.
--
-- A row that existed before the capture and has no history yet (the backfill has not reached
-- it) is imported first, in the same append: its stream starts with RowImported (the row as
-- it was before the change), then the change. The row's lock, which the UPDATE or DELETE
-- holds, keeps the backfill (which locks rows FOR SHARE) from importing it twice.
--
-- Trigger arguments: stream prefix, key columns, excluded columns, history epoch (see
-- pyes.captured_tables). pyes.capture_add writes them from the registry.

CREATE OR REPLACE FUNCTION pyes.capture_row()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prefix     text   := TG_ARGV[0];
    v_keys       text[] := TG_ARGV[1]::text[];
    v_excluded   text[] := TG_ARGV[2]::text[];
    v_epoch      bigint := TG_ARGV[3]::bigint;
    v_table      text   := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    v_corr       uuid;
    v_new        jsonb;
    v_old        jsonb;
    v_stream     text;
    v_old_stream text;
    v_key        jsonb;
    v_old_key    jsonb;
    v_changes    jsonb;
    v_redacted   text[];
    v_data       jsonb;
BEGIN
    v_corr := CASE WHEN coalesce(current_setting('pyes.correlation_id', true), '') = '' THEN NULL
                   ELSE pyes.capture_correlation_id() END;
    IF TG_OP <> 'DELETE' THEN
        v_new := to_jsonb(NEW);
        v_key := pyes.capture_key(v_keys, v_new);
        v_stream := pyes.capture_stream_id(v_prefix, v_keys, v_new);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        v_old := to_jsonb(OLD);
        v_old_key := pyes.capture_key(v_keys, v_old);
        v_old_stream := pyes.capture_stream_id(v_prefix, v_keys, v_old);
    END IF;

    IF TG_OP = 'INSERT' THEN
        PERFORM pyes.capture_append(v_stream, v_epoch, NULL, NULL, v_table, 'insert',
            jsonb_build_object('type', 'RowCreated', 'data', jsonb_build_object('key', v_key, 'row', v_new - v_excluded)), v_corr);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pyes.capture_append(v_old_stream, v_epoch, v_old_key, v_old - v_excluded, v_table, lower(TG_OP),
            jsonb_build_object('type', 'RowDeleted', 'data', jsonb_build_object('key', v_old_key, 'row', v_old - v_excluded)), v_corr);
    ELSIF v_stream <> v_old_stream THEN
        -- The primary key changed: the row leaves one stream and starts another.
        PERFORM pyes.capture_append(v_old_stream, v_epoch, v_old_key, v_old - v_excluded, v_table, lower(TG_OP),
            jsonb_build_object('type', 'RowDeleted', 'data',
                jsonb_build_object('key', v_old_key, 'row', v_old - v_excluded, 'moved_to', v_key)), v_corr);
        PERFORM pyes.capture_append(v_stream, v_epoch, NULL, NULL, v_table, 'update',
            jsonb_build_object('type', 'RowCreated', 'data',
                jsonb_build_object('key', v_key, 'row', v_new - v_excluded, 'moved_from', v_old_key)), v_corr);
    ELSE
        SELECT jsonb_object_agg(n.key, jsonb_build_object('old', o.value, 'new', n.value))
                   FILTER (WHERE n.key <> ALL (v_excluded)),
               array_agg(n.key ORDER BY n.key) FILTER (WHERE n.key = ANY (v_excluded))
          INTO v_changes, v_redacted
          FROM jsonb_each(v_new) AS n
          JOIN jsonb_each(v_old) AS o ON o.key = n.key
         WHERE n.value IS DISTINCT FROM o.value;
        IF v_changes IS NULL AND v_redacted IS NULL THEN
            RETURN NULL;  -- nothing changed
        END IF;
        v_data := jsonb_build_object('key', v_key, 'changes', coalesce(v_changes, '{}'::jsonb));
        IF v_redacted IS NOT NULL THEN
            v_data := v_data || jsonb_build_object('redacted', to_jsonb(v_redacted));
        END IF;
        PERFORM pyes.capture_append(v_stream, v_epoch, v_key, v_old - v_excluded, v_table, 'update',
            jsonb_build_object('type', 'RowUpdated', 'data', v_data), v_corr);
    END IF;
    RETURN NULL;
END;
$$;

-- Appends one captured event (p_event: type and data) to p_stream with the change's
-- metadata. p_base (the row before the change, without excluded columns) is given for an
-- UPDATE or DELETE: if the stream has no history of the current capture yet, the event is
-- preceded by a RowImported of p_base, in one append at the exact version read (the row's
-- lock keeps every other capture writer of this stream out until commit).
CREATE OR REPLACE FUNCTION pyes.capture_append(
    p_stream text, p_epoch bigint, p_base_key jsonb, p_base jsonb, p_table text, p_operation text,
    p_event jsonb, p_correlation_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_batch   jsonb := jsonb_build_array(p_event || jsonb_build_object(
                           'metadata', pyes.capture_metadata(p_table, p_operation),
                           'correlation_id', p_correlation_id));
    v_version bigint;
    v_last    bigint;
BEGIN
    IF p_base IS NULL THEN
        PERFORM pyes.append(p_stream, v_batch, 'any');
        RETURN;
    END IF;
    SELECT s.version INTO v_version FROM pyes.streams s WHERE s.stream_id = p_stream;
    IF v_version IS NOT NULL AND p_epoch > 0 THEN
        SELECT e.position INTO v_last FROM pyes.events e WHERE e.stream_id = p_stream AND e.version = v_version;
    END IF;
    IF v_version IS NULL OR v_last <= p_epoch THEN
        v_batch := jsonb_build_array(jsonb_build_object(
                       'type', 'RowImported',
                       'data', jsonb_build_object('key', p_base_key, 'row', p_base),
                       'metadata', pyes.capture_metadata(p_table, 'import'),
                       'correlation_id', p_correlation_id)) || v_batch;
    END IF;
    PERFORM pyes.append(p_stream, v_batch, coalesce(v_version, 0)::text);
END;
$$;

-- TRUNCATE would remove rows without a trace in their history: a captured table refuses it.
CREATE OR REPLACE FUNCTION pyes.capture_refuse_truncate()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE on captured table %.% is not allowed', quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
        USING ERRCODE = 'PE509',
              DETAIL = 'TRUNCATE fires no row triggers, so the deleted rows would be missing from the table''s history.',
              HINT = 'DELETE the rows (each one is recorded), or remove the capture first with pyes.capture_remove.';
END;
$$;
