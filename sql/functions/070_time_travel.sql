-- Time travel: a stream as it was at a moment. recorded_at is taken after the append has
-- locked its stream, so within one stream it never goes down: the events recorded at or
-- before a moment are a prefix of the stream.

-- A stream's events recorded between two moments, both included (NULL: no bound), in
-- version order, from p_from_version on.
CREATE OR REPLACE FUNCTION pyes.read_stream_between(
    p_stream_id text,
    p_since timestamptz DEFAULT NULL,
    p_until timestamptz DEFAULT NULL,
    p_from_version bigint DEFAULT NULL,
    p_max_count integer DEFAULT 1000)
RETURNS SETOF pyes.recorded_events
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pyes.validate_stream_id(p_stream_id);
    PERFORM pyes.validate_max_count(p_max_count);
    IF p_since > p_until THEN
        RAISE EXCEPTION 'invalid time window: % is after %', p_since, p_until
            USING ERRCODE = 'PE109',
                  DETAIL = 'The start of the window must not be later than its end.',
                  HINT = 'Swap the two moments, or pass NULL for an open end.';
    END IF;
    RETURN QUERY
    SELECT e.*
      FROM pyes.recorded_events e
     WHERE e.stream_id = p_stream_id
       AND e.version >= coalesce(p_from_version, 1)
       AND e.recorded_at >= coalesce(p_since, '-infinity')
       AND e.recorded_at <= coalesce(p_until, 'infinity')
     ORDER BY e.version
     LIMIT p_max_count;
END;
$$;

-- The events of a stream as it was at p_until: those recorded at or before that moment.
CREATE OR REPLACE FUNCTION pyes.read_stream_until(
    p_stream_id text,
    p_until timestamptz,
    p_from_version bigint DEFAULT NULL,
    p_max_count integer DEFAULT 1000)
RETURNS SETOF pyes.recorded_events
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_until IS NULL THEN
        RAISE EXCEPTION 'invalid moment NULL'
            USING ERRCODE = 'PE109',
                  DETAIL = 'pyes.read_stream_until needs the moment to read the stream as of.',
                  HINT = 'Pass a timestamptz, such as ''2026-11-24 15:00+01''.';
    END IF;
    RETURN QUERY SELECT * FROM pyes.read_stream_between(p_stream_id, NULL, p_until, p_from_version, p_max_count);
END;
$$;

-- The stream's version at a moment: that of its last event recorded at or before it (0 if none).
CREATE OR REPLACE FUNCTION pyes.stream_version_at(p_stream_id text, p_at timestamptz)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pyes.validate_stream_id(p_stream_id);
    IF p_at IS NULL THEN
        RAISE EXCEPTION 'invalid moment NULL'
            USING ERRCODE = 'PE109',
                  DETAIL = 'pyes.stream_version_at needs the moment to look at.',
                  HINT = 'Pass a timestamptz, such as ''2026-11-24 15:00+01''.';
    END IF;
    RETURN coalesce((SELECT max(e.version) FROM pyes.events e
                      WHERE e.stream_id = p_stream_id AND e.recorded_at <= p_at), 0);
END;
$$;
