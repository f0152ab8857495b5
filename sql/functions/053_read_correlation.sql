-- Every committed event of one correlation id (one request, one saga), in the global order.
-- An audit query, not a feed: it shows what is committed now, without the late-commit line
-- of pyes.read_all, so that a just-committed request is seen at once. Pages continue after
-- the checkpoint of the last row, like the other reads.
CREATE OR REPLACE FUNCTION pyes.read_correlation(
    p_correlation_id uuid,
    p_after text DEFAULT NULL,
    p_max_count integer DEFAULT 1000)
RETURNS SETOF pyes.recorded_events
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_after record;
BEGIN
    IF p_correlation_id IS NULL THEN
        RAISE EXCEPTION 'invalid correlation id NULL'
            USING ERRCODE = 'PE109',
                  DETAIL = 'pyes.read_correlation needs the correlation id (a uuid) of the events to read.',
                  HINT = 'Pass the correlation_id of any event of the request.';
    END IF;
    PERFORM pyes.validate_max_count(p_max_count);
    v_after := pyes.parse_checkpoint(p_after);
    RETURN QUERY
    SELECT e.*
      FROM pyes.recorded_events e
     WHERE e.correlation_id = p_correlation_id
       AND (e.transaction_id, e.position) > (v_after.transaction_id, v_after.position)
     ORDER BY e.transaction_id, e.position
     LIMIT p_max_count;
END;
$$;
