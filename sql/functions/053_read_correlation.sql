-- Every committed event of one correlation id (one request, one saga), in the global order.
-- An audit query, not a feed: it shows what is committed now, without the late-commit line
-- of pyes.read_all, so that a just-committed request is seen at once.
CREATE OR REPLACE FUNCTION pyes.read_correlation(
    p_correlation_id uuid,
    p_max_count integer DEFAULT 1000)
RETURNS SETOF pyes.recorded_events
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_correlation_id IS NULL THEN
        RAISE EXCEPTION 'invalid correlation id NULL'
            USING ERRCODE = 'PE109',
                  DETAIL = 'pyes.read_correlation needs the correlation id (a uuid) of the events to read.',
                  HINT = 'Pass the correlation_id of any event of the request.';
    END IF;
    PERFORM pyes.validate_max_count(p_max_count);
    RETURN QUERY
    SELECT e.*
      FROM pyes.recorded_events e
     WHERE e.correlation_id = p_correlation_id
     ORDER BY e.transaction_id, e.position
     LIMIT p_max_count;
END;
$$;
