-- Reading one stream, one event, and the shared argument checks of the read functions.

CREATE OR REPLACE FUNCTION pyes.validate_max_count(p_max_count integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_max_count IS NULL OR p_max_count NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'invalid max_count %', coalesce(p_max_count::text, 'NULL')
            USING ERRCODE = 'PE109',
                  DETAIL = 'A read returns 1 to 100000 events per call.',
                  HINT = 'Read in pages: pass the last version or checkpoint you got to the next call.';
    END IF;
END;
$$;

-- Events of one stream in version order. Forward: versions >= p_from_version (default 1).
-- Backward: versions <= p_from_version (default: the last), newest first.
CREATE OR REPLACE FUNCTION pyes.read_stream(
    p_stream_id text,
    p_from_version bigint DEFAULT NULL,
    p_max_count integer DEFAULT 1000,
    p_direction text DEFAULT 'forward')
RETURNS SETOF pyes.recorded_events
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pyes.validate_stream_id(p_stream_id);
    PERFORM pyes.validate_max_count(p_max_count);
    IF p_direction = 'forward' THEN
        RETURN QUERY
        SELECT e.*
          FROM pyes.recorded_events e
         WHERE e.stream_id = p_stream_id AND e.version >= coalesce(p_from_version, 1)
         ORDER BY e.version
         LIMIT p_max_count;
    ELSIF p_direction = 'backward' THEN
        RETURN QUERY
        SELECT e.*
          FROM pyes.recorded_events e
         WHERE e.stream_id = p_stream_id AND e.version <= coalesce(p_from_version, 9223372036854775807)
         ORDER BY e.version DESC
         LIMIT p_max_count;
    ELSE
        RAISE EXCEPTION 'unknown direction %', coalesce(quote_literal(p_direction), 'NULL')
            USING ERRCODE = 'PE109',
                  DETAIL = 'The direction of pyes.read_stream is ''forward'' or ''backward''.',
                  HINT = 'Pass ''backward'' to read the newest events first.';
    END IF;
END;
$$;

-- One event by its id; no row if there is none.
CREATE OR REPLACE FUNCTION pyes.get_event(p_event_id uuid)
RETURNS SETOF pyes.recorded_events
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT e.* FROM pyes.recorded_events e WHERE e.event_id = p_event_id;
END;
$$;
