-- Input checks of pyes.append. Each problem has its own SQLSTATE (docs/errors.md) and a
-- DETAIL that says which argument or which event is wrong; nothing is written.

-- A stream id: 1 to 255 characters, no control characters (tabs and newlines included), not
-- starting with '-' (its category would be empty).
CREATE OR REPLACE FUNCTION pyes.validate_stream_id(p_stream_id text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_stream_id IS NULL OR p_stream_id = '' THEN
        RAISE EXCEPTION 'invalid stream id: it is empty'
            USING ERRCODE = 'PE101',
                  DETAIL = 'A stream id is 1 to 255 characters, such as ''account-123''.',
                  HINT = 'Name the stream as "<category>-<id>".';
    ELSIF char_length(p_stream_id) > 255 THEN
        RAISE EXCEPTION 'invalid stream id: it is % characters long', char_length(p_stream_id)
            USING ERRCODE = 'PE101',
                  DETAIL = format('A stream id is at most 255 characters; this one starts with %L.', left(p_stream_id, 40)),
                  HINT = 'Use a shorter id, such as a uuid after the category.';
    ELSIF left(p_stream_id, 1) = '-' THEN
        RAISE EXCEPTION 'invalid stream id: it starts with ''-'''
            USING ERRCODE = 'PE101',
                  DETAIL = format('Stream id %L would have an empty category (the part before the first ''-'').', p_stream_id),
                  HINT = 'Name the stream as "<category>-<id>".';
    ELSIF p_stream_id ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'invalid stream id: it contains a control character'
            USING ERRCODE = 'PE101',
                  DETAIL = format('Stream id %L contains a control character (tab, newline or other).', p_stream_id),
                  HINT = 'Remove control characters from the stream id.';
    END IF;
END;
$$;

-- PE105. pyes.append accepts 'any', 'no_stream', 'stream_exists', or a version number
-- N >= 0 (0 means the same as 'no_stream'); it parses them inline and calls this otherwise.
CREATE OR REPLACE FUNCTION pyes.raise_invalid_expected_version(p_expected text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'unknown expected version %', coalesce(quote_literal(p_expected), 'NULL')
        USING ERRCODE = 'PE105',
              DETAIL = 'The expected version is ''any'', ''no_stream'', ''stream_exists'' or a version number (0 or more).',
              HINT = 'Pass the version you loaded the stream at, or ''any'' to skip the check.';
END;
$$;

-- Checks every event of a batch, one by one, and raises for the first problem; returns how
-- many events there are. pyes.append runs an equivalent check over the whole batch at once
-- and calls this only when that check fails, to name the problem (tests/test_validation.py
-- compares the two on generated input). An event is a JSON object
-- with a "type" and optionally "id" (null or absent: one is made), "data", "metadata", "schema_version",
-- "correlation_id" and "causation_id"; any other key is refused, so a typo cannot lose data.
CREATE OR REPLACE FUNCTION pyes.validate_events(p_events jsonb, p_stream_id text)
RETURNS integer
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_max   integer := pyes.max_event_bytes();
    v_count integer;
    v_bad   record;
    -- The forms of uuid that PostgreSQL accepts, braces balanced.
    v_uuid  constant text := '^(\{[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}|[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12})$';
    -- An event type; its length (<= 255) is checked apart, because a bounded repeat such as
    -- {0,254} makes PostgreSQL's regex engine about ten times slower.
    v_type  constant text := '^[A-Za-z_$][A-Za-z0-9_.:/$-]*$';
BEGIN
    IF p_events IS NULL OR jsonb_typeof(p_events) <> 'array' THEN
        RAISE EXCEPTION 'invalid batch: events must be a JSON array'
            USING ERRCODE = 'PE107',
                  DETAIL = format('pyes.append(%L, ...) got %s instead of an array of event objects.',
                                  p_stream_id, coalesce(jsonb_typeof(p_events), 'NULL')),
                  HINT = 'Pass ''[{"type": "Deposited", "data": {"amount": 10}}]''.';
    END IF;
    v_count := jsonb_array_length(p_events);
    IF v_count = 0 THEN
        RAISE EXCEPTION 'invalid batch: no events to append'
            USING ERRCODE = 'PE107',
                  DETAIL = format('pyes.append(%L, ...) got an empty array.', p_stream_id),
                  HINT = 'Append at least one event.';
    END IF;

    -- One pass over the batch; the first problem found is reported.
    SELECT q.ord, q.problem, q.ev INTO v_bad
    FROM (
        SELECT e.ord, e.ev, CASE
            WHEN jsonb_typeof(e.ev) <> 'object' THEN 'not_object'
            WHEN e.ev - '{id,type,data,metadata,schema_version,correlation_id,causation_id}'::text[] <> '{}'::jsonb
                THEN 'unknown_key'
            WHEN jsonb_typeof(e.ev -> 'type') IS DISTINCT FROM 'string'
                 OR char_length(e.ev ->> 'type') > 255 OR NOT (e.ev ->> 'type' ~ v_type) THEN 'type'
            WHEN e.ev ? 'data' AND jsonb_typeof(e.ev -> 'data') <> 'object' THEN 'data'
            WHEN e.ev ? 'metadata' AND jsonb_typeof(e.ev -> 'metadata') <> 'object' THEN 'metadata'
            WHEN jsonb_typeof(e.ev -> 'id') NOT IN ('null', 'string')
                 OR NOT coalesce(e.ev ->> 'id' ~ v_uuid, true) THEN 'id'
            WHEN jsonb_typeof(e.ev -> 'correlation_id') NOT IN ('null', 'string')
                 OR NOT coalesce(e.ev ->> 'correlation_id' ~ v_uuid, true) THEN 'correlation_id'
            WHEN jsonb_typeof(e.ev -> 'causation_id') NOT IN ('null', 'string')
                 OR NOT coalesce(e.ev ->> 'causation_id' ~ v_uuid, true) THEN 'causation_id'
            WHEN e.ev ? 'schema_version' AND NOT coalesce(jsonb_typeof(e.ev -> 'schema_version') = 'number'
                 AND e.ev ->> 'schema_version' ~ '^[0-9]{1,9}$' AND (e.ev ->> 'schema_version')::integer >= 1, false)
                THEN 'schema_version'
            WHEN pg_column_size(e.ev) > v_max THEN 'size'
        END AS problem
        FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(ev, ord)
    ) q
    WHERE q.problem IS NOT NULL
    ORDER BY q.ord
    LIMIT 1;

    IF NOT FOUND THEN
        RETURN v_count;
    END IF;

    CASE v_bad.problem
    WHEN 'not_object' THEN
        RAISE EXCEPTION 'invalid event: event % of the batch is not a JSON object', v_bad.ord
            USING ERRCODE = 'PE103',
                  DETAIL = format('Event %s for stream %L is %s.', v_bad.ord, p_stream_id, jsonb_typeof(v_bad.ev)),
                  HINT = 'Each event is an object such as {"type": "Deposited", "data": {...}}.';
    WHEN 'unknown_key' THEN
        RAISE EXCEPTION 'invalid event: event % of the batch has an unknown key', v_bad.ord
            USING ERRCODE = 'PE103',
                  DETAIL = format('Event %s for stream %L has key(s) %s.', v_bad.ord, p_stream_id,
                      (SELECT string_agg(quote_literal(k), ', ') FROM jsonb_object_keys(v_bad.ev -
                       '{id,type,data,metadata,schema_version,correlation_id,causation_id}'::text[]) AS k)),
                  HINT = 'Allowed keys: id, type, data, metadata, schema_version, correlation_id, causation_id.';
    WHEN 'type' THEN
        RAISE EXCEPTION 'invalid event type in event % of the batch', v_bad.ord
            USING ERRCODE = 'PE102',
                  DETAIL = format('Event %s for stream %L has type %s.', v_bad.ord, p_stream_id,
                                  coalesce(v_bad.ev -> 'type', 'null'::jsonb)),
                  HINT = 'A type is 1 to 255 characters: a letter, _ or $, then letters, digits or _ . : / $ -.';
    WHEN 'data', 'metadata' THEN
        RAISE EXCEPTION 'invalid event: % of event % is not a JSON object', v_bad.problem, v_bad.ord
            USING ERRCODE = 'PE103',
                  DETAIL = format('Event %s for stream %L has %s of type %s.', v_bad.ord, p_stream_id,
                                  v_bad.problem, jsonb_typeof(v_bad.ev -> v_bad.problem)),
                  HINT = 'Wrap the value in an object, such as {"value": 42}.';
    WHEN 'id', 'correlation_id', 'causation_id' THEN
        RAISE EXCEPTION 'invalid %: event % of the batch has a value that is not a uuid', v_bad.problem, v_bad.ord
            USING ERRCODE = 'PE106',
                  DETAIL = format('Event %s for stream %L has %s %s.', v_bad.ord, p_stream_id,
                                  v_bad.problem, v_bad.ev -> v_bad.problem),
                  HINT = 'Use a uuid such as ''0b7e4a52-2f1c-4c5e-9d0a-4e4a3a1f6b10''.';
    WHEN 'schema_version' THEN
        RAISE EXCEPTION 'invalid event: schema_version of event % is not a whole number of 1 or more', v_bad.ord
            USING ERRCODE = 'PE103',
                  DETAIL = format('Event %s for stream %L has schema_version %s.', v_bad.ord, p_stream_id,
                                  v_bad.ev -> 'schema_version'),
                  HINT = 'Leave schema_version out (it defaults to 1) or pass 1, 2, ...';
    ELSE -- 'size'
        RAISE EXCEPTION 'event too large: event % of the batch is % bytes', v_bad.ord, pg_column_size(v_bad.ev)
            USING ERRCODE = 'PE104',
                  DETAIL = format('Event %s for stream %L takes %s bytes; the limit (pyes.max_event_bytes) is %s.',
                                  v_bad.ord, p_stream_id, pg_column_size(v_bad.ev), v_max),
                  HINT = 'Store large content elsewhere and put a reference in the event, or raise pyes.max_event_bytes.';
    END CASE;
END;
$$;
