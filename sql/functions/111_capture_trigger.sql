-- Capture, part 2: the triggers that pyes.capture_add installs on a captured table.
--
-- Every INSERT, UPDATE and DELETE appends, in the same transaction, one event to the row's
-- stream, with the checks of pyes.append, its stream lock and its gap-free global order
-- (pyes.capture_write below):
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
    v_corr       text   := nullif(current_setting('pyes.correlation_id', true), '');
    v_xid        xid8   := pg_current_xact_id();
    v_row        jsonb;
    v_new        jsonb;
    v_old        jsonb;
    v_stream     text;
    v_part       text;
    v_key        jsonb;
    v_changes    jsonb;
    v_redacted   text[];
    v_data       jsonb;
    v_type       text;
    v_meta       jsonb;
    v_event      jsonb;
    v_version    bigint;
    v_now        timestamptz;
    v_last       bigint;
    v_moved      boolean;
    v_max        integer := 1048576;  -- pyes.max_event_bytes() when the setting is empty
BEGIN
    -- This is the hot path of every write to a captured table. Each SQL statement below
    -- costs an executor start-up and each call of a function with a pinned search_path a
    -- configuration save and restore, so the common case runs three statements: the
    -- changed columns, the stream row's compare-and-set and the INSERT (measured with
    -- callgrind: bench/README.md, "Capture, part by part").
    IF v_corr IS NOT NULL THEN
        v_corr := pyes.capture_correlation_id()::text;  -- PE505 unless a uuid
    END IF;
    IF TG_OP <> 'DELETE' THEN
        v_new := to_jsonb(NEW);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        v_old := to_jsonb(OLD);
    END IF;
    v_row := coalesce(v_new, v_old);

    IF TG_OP = 'UPDATE' THEN
        IF cardinality(v_keys) = 1 THEN  -- a plain expression, not a query
            v_moved := (v_new -> v_keys[1]) IS DISTINCT FROM (v_old -> v_keys[1]);
        ELSE
            v_moved := EXISTS (SELECT 1 FROM unnest(v_keys) AS k(col) WHERE (v_new -> k.col) IS DISTINCT FROM (v_old -> k.col));
        END IF;
        IF v_moved THEN
            -- The primary key changed: the row leaves one stream and starts another.
            PERFORM pyes.capture_append(pyes.capture_stream_id(v_prefix, v_keys, v_old), v_epoch,
                pyes.capture_key(v_keys, v_old), v_old - v_excluded, v_table, 'update',
                jsonb_build_object('type', 'RowDeleted', 'data', jsonb_build_object(
                    'key', pyes.capture_key(v_keys, v_old), 'row', v_old - v_excluded, 'moved_to', pyes.capture_key(v_keys, v_new))),
                v_corr::uuid);
            PERFORM pyes.capture_append(pyes.capture_stream_id(v_prefix, v_keys, v_new), v_epoch, NULL, NULL, v_table, 'update',
                jsonb_build_object('type', 'RowCreated', 'data', jsonb_build_object(
                    'key', pyes.capture_key(v_keys, v_new), 'row', v_new - v_excluded, 'moved_from', pyes.capture_key(v_keys, v_old))),
                v_corr::uuid);
            RETURN NULL;
        END IF;
    END IF;

    -- The row's stream and key (the key is the same in OLD and NEW here).
    IF cardinality(v_keys) = 1 THEN
        v_part := v_row ->> v_keys[1];
        IF v_part IS NULL OR v_part ~ '[%:[:cntrl:]]' THEN
            v_stream := pyes.capture_stream_id(v_prefix, v_keys, v_row);  -- escapes, or raises PE506
        ELSE
            v_stream := v_prefix || '-' || v_part;
        END IF;
        v_key := jsonb_build_object(v_keys[1], v_row -> v_keys[1]);
    ELSE
        v_stream := pyes.capture_stream_id(v_prefix, v_keys, v_row);
        v_key := pyes.capture_key(v_keys, v_row);
    END IF;

    IF TG_OP = 'INSERT' THEN
        v_type := 'RowCreated';
        v_data := jsonb_build_object('key', v_key, 'row', v_new - v_excluded);
    ELSIF TG_OP = 'DELETE' THEN
        v_type := 'RowDeleted';
        v_data := jsonb_build_object('key', v_key, 'row', v_old - v_excluded);
    ELSE
        SELECT jsonb_object_agg(n.key, jsonb_build_object('old', v_old -> n.key, 'new', n.value))
          INTO v_changes
          FROM jsonb_each(v_new) AS n
         WHERE n.value IS DISTINCT FROM v_old -> n.key
           AND n.key <> ALL (v_excluded);
        IF cardinality(v_excluded) > 0 THEN
            SELECT array_agg(x.col ORDER BY x.col) INTO v_redacted
              FROM unnest(v_excluded) AS x(col)
             WHERE (v_new -> x.col) IS DISTINCT FROM (v_old -> x.col);
        END IF;
        IF v_changes IS NULL AND v_redacted IS NULL THEN
            RETURN NULL;  -- nothing changed
        END IF;
        v_type := 'RowUpdated';
        v_data := jsonb_build_object('key', v_key, 'changes', coalesce(v_changes, '{}'::jsonb));
        IF v_redacted IS NOT NULL THEN
            v_data := v_data || jsonb_build_object('redacted', to_jsonb(v_redacted));
        END IF;
    END IF;

    -- Who and why: the same as pyes.capture_metadata. Building a jsonb costs about as much
    -- per key as a statement, so the settings that are usually empty are tested first.
    v_meta := jsonb_build_object('table', v_table, 'operation', lower(TG_OP), 'db_role', current_user::text);
    IF current_setting('application_name', true) <> '' THEN
        v_meta := v_meta || jsonb_build_object('application_name', current_setting('application_name', true));
    END IF;
    IF coalesce(current_setting('pyes.actor', true), '') <> '' THEN
        v_meta := v_meta || jsonb_build_object('actor', current_setting('pyes.actor', true));
    END IF;
    IF coalesce(current_setting('pyes.reason', true), '') <> '' THEN
        v_meta := v_meta || jsonb_build_object('reason', current_setting('pyes.reason', true));
    END IF;
    IF coalesce(current_setting('pyes.restored_to', true), '') <> '' THEN
        v_meta := v_meta || jsonb_build_object('restored_to', current_setting('pyes.restored_to', true));
    END IF;
    IF coalesce(current_setting('pyes.max_event_bytes', true), '') <> '' THEN
        v_max := pyes.max_event_bytes();
    END IF;

    -- The common case: the row's stream exists (and, for an UPDATE or DELETE, holds history
    -- of this capture, which is certain in a first capture, history epoch 0), and the stream
    -- id and the event pass the checks of pyes.append. The event's size (pyes.append's
    -- PE104 measures the whole event object) is at most its data's and metadata's plus 256
    -- bytes: type, correlation id, keys and headers. Then it is one compare-and-set of the
    -- stream's row, as in capture_write, and one INSERT. Otherwise (a new stream, a row to
    -- import first, a newer writer of the stream, an event near the size limit or input that
    -- fails a check) capture_write below does the whole job, with its errors.
    IF (v_epoch = 0 OR TG_OP = 'INSERT')
       AND char_length(v_stream) <= 255 AND v_stream !~ '[[:cntrl:]]'
       AND pg_column_size(v_data) + pg_column_size(v_meta) + 256 <= v_max THEN
        UPDATE pyes.streams s
           SET version = s.version + 1, last_xid = v_xid, updated_at = clock_timestamp()
         WHERE s.stream_id = v_stream
           AND s.last_xid <= v_xid
        RETURNING s.version, s.updated_at INTO v_version, v_now;
        IF FOUND THEN
            INSERT INTO pyes.events (event_id, stream_id, category, version, type, data, metadata,
                                     correlation_id, recorded_at, transaction_id)
            VALUES (gen_random_uuid(), v_stream, split_part(v_stream, '-', 1), v_version, v_type, v_data, v_meta,
                    v_corr::uuid, v_now, v_xid);
            RETURN NULL;
        END IF;
    END IF;

    v_event := jsonb_build_object('type', v_type, 'data', v_data, 'correlation_id', v_corr, 'metadata', v_meta);
    IF TG_OP = 'INSERT' THEN
        PERFORM pyes.capture_write(v_stream, jsonb_build_array(v_event), NULL);
        RETURN NULL;
    END IF;
    -- An UPDATE or DELETE of a row without history in this capture: import it first.
    SELECT s.version INTO v_version FROM pyes.streams s WHERE s.stream_id = v_stream;
    IF v_version IS NOT NULL AND v_epoch > 0 THEN
        SELECT e.position INTO v_last FROM pyes.events e WHERE e.stream_id = v_stream AND e.version = v_version;
    END IF;
    IF v_version IS NULL OR v_last <= v_epoch THEN
        PERFORM pyes.capture_write(v_stream, jsonb_build_array(
            jsonb_build_object('type', 'RowImported', 'data', jsonb_build_object('key', v_key, 'row', v_old - v_excluded),
                               'correlation_id', v_corr, 'metadata', v_meta || '{"operation": "import"}'::jsonb),
            v_event), coalesce(v_version, 0));
    ELSE
        PERFORM pyes.capture_write(v_stream, jsonb_build_array(v_event), v_version);
    END IF;
    RETURN NULL;
END;
$$;

-- Writes captured events (a JSON array built by the functions above: known types, data and
-- metadata objects, no ids) to p_stream at the expected version p_expected (NULL: any). It
-- runs the checks of pyes.append that such input can fail, in the same order and with the
-- same errors: the stream id (PE101), the event size (PE104), the expected version (PE001)
-- and the refusal of a transaction older than the stream's last writer (40001), with the
-- same compare-and-set on the stream's row; then inserts the rows as pyes.append does (the
-- same columns, recorded_at read once the stream is locked, the transaction id). The
-- triggers on pyes.events (immutability, NOTIFY) apply as to any append. The checks of
-- input a capture cannot produce (unknown keys, given ids, types) are left out: they cost
-- more than the whole write of a captured row.
CREATE OR REPLACE FUNCTION pyes.capture_write(p_stream text, p_events jsonb, p_expected bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count   integer := jsonb_array_length(p_events);
    v_xid     xid8 := pg_current_xact_id();
    v_version bigint;
    v_now     timestamptz;
    v_max     integer := 1048576;
BEGIN
    IF char_length(p_stream) > 255 OR p_stream ~ '[[:cntrl:]]' THEN
        PERFORM pyes.validate_stream_id(p_stream);
    END IF;
    IF coalesce(current_setting('pyes.max_event_bytes', true), '') <> '' THEN
        v_max := pyes.max_event_bytes();
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(p_events) AS e(ev) WHERE pg_column_size(e.ev) > v_max) THEN
        PERFORM pyes.validate_events(p_events, p_stream);  -- raises PE104
    END IF;
    IF p_expected IS DISTINCT FROM 0 THEN
        UPDATE pyes.streams s
           SET version = s.version + v_count, last_xid = v_xid, updated_at = clock_timestamp()
         WHERE s.stream_id = p_stream
           AND s.last_xid <= v_xid
           AND (p_expected IS NULL OR s.version = p_expected)
        RETURNING s.version, s.updated_at INTO v_version, v_now;
    END IF;
    IF v_version IS NULL THEN
        SELECT c.version, c.recorded_at INTO v_version, v_now
          FROM pyes.claim_stream(p_stream, CASE WHEN p_expected IS NULL THEN 'any' ELSE 'exact' END,
                                 p_expected, v_count, v_xid) c;
    END IF;
    INSERT INTO pyes.events (event_id, stream_id, category, version, type, data, metadata,
                             correlation_id, recorded_at, transaction_id)
    SELECT gen_random_uuid(), p_stream, split_part(p_stream, '-', 1), v_version - v_count + e.ord,
           e.ev ->> 'type', e.ev -> 'data', e.ev -> 'metadata', (e.ev ->> 'correlation_id')::uuid, v_now, v_xid
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(ev, ord)
     ORDER BY e.ord;
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
        PERFORM pyes.capture_write(p_stream, v_batch, NULL);
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
    PERFORM pyes.capture_write(p_stream, v_batch, coalesce(v_version, 0));
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
