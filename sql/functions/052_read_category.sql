-- One category ("account" for account-1, account-2, ...) in the gap-free global order.
-- See 051_read_all.sql for why the order never skips a late commit.
CREATE OR REPLACE FUNCTION pyes.read_category(
    p_category text,
    p_after text DEFAULT NULL,
    p_max_count integer DEFAULT 1000,
    p_types text[] DEFAULT NULL)
RETURNS SETOF pyes.recorded_events
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_after record := pyes.parse_checkpoint(p_after);
BEGIN
    IF p_category IS NULL OR p_category = '' OR strpos(p_category, '-') > 0 OR char_length(p_category) > 255 THEN
        RAISE EXCEPTION 'invalid category %', coalesce(quote_literal(p_category), 'NULL')
            USING ERRCODE = 'PE109',
                  DETAIL = 'A category is the part of a stream id before its first ''-'': ''account'' for ''account-123''.',
                  HINT = 'Pass the category alone, without the stream''s id.';
    END IF;
    PERFORM pyes.validate_max_count(p_max_count);
    PERFORM pyes.validate_types(p_types);
    RETURN QUERY
    SELECT e.*
      FROM pyes.recorded_events e
     WHERE e.category = p_category
       AND (e.transaction_id, e.position) > (v_after.transaction_id, v_after.position)
       AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
       AND (p_types IS NULL OR e.type = ANY (p_types))
     ORDER BY e.transaction_id, e.position
     LIMIT p_max_count;
END;
$$;
