-- Streams carry a metadata object of their own (owner, retention hints, a "closed" flag...).
-- Unlike events it can change: it describes the stream, not what happened in it.

CREATE OR REPLACE FUNCTION pyes.set_stream_metadata(p_stream_id text, p_metadata jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pyes.validate_stream_id(p_stream_id);
    IF p_metadata IS NULL OR jsonb_typeof(p_metadata) <> 'object' THEN
        RAISE EXCEPTION 'invalid stream metadata: it must be a JSON object'
            USING ERRCODE = 'PE103',
                  DETAIL = format('pyes.set_stream_metadata(%L, ...) got %s.', p_stream_id, coalesce(jsonb_typeof(p_metadata), 'NULL')),
                  HINT = 'Pass an object such as {"owner": "billing"}.';
    END IF;
    UPDATE pyes.streams s SET metadata = p_metadata, updated_at = clock_timestamp()
     WHERE s.stream_id = p_stream_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stream % does not exist', quote_literal(p_stream_id)
            USING ERRCODE = 'PE003',
                  DETAIL = format('No event has been appended to stream %L yet, so it has no metadata to set.', p_stream_id),
                  HINT = 'Append the stream''s first event, then set its metadata.';
    END IF;
END;
$$;

-- The small read functions here and elsewhere are plpgsql rather than SQL: with a pinned
-- search_path a SQL function cannot be inlined, and before PostgreSQL 18 it is planned anew
-- on every call, while plpgsql keeps its plans for the session.

-- A stream's row: version, category, metadata and times. No row if the stream does not exist.
CREATE OR REPLACE FUNCTION pyes.get_stream(p_stream_id text)
RETURNS TABLE (stream_id text, category text, version bigint, metadata jsonb,
               created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT s.stream_id, s.category, s.version, s.metadata, s.created_at, s.updated_at
      FROM pyes.streams s WHERE s.stream_id = p_stream_id;
END;
$$;

-- The stream's current version: the version of its last event, 0 if it has none.
CREATE OR REPLACE FUNCTION pyes.stream_version(p_stream_id text)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce((SELECT s.version FROM pyes.streams s WHERE s.stream_id = p_stream_id), 0);
END;
$$;
