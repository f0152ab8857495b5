-- The global order: every event, in (transaction_id, position) order, never skipping an
-- event whose transaction commits late.
--
-- Why this is gap-free: a row is returned only if its transaction id is below
-- pg_snapshot_xmin(pg_current_snapshot()), the oldest transaction still running. Every such
-- transaction has ended, so no event can ever appear below that line again; and any
-- transaction that commits later has an id at or above it, so it sorts after every event
-- returned now. A reader that continues after its last (transaction_id, position) therefore
-- sees each event exactly once. pyes.append refuses (40001) an append that would put a
-- stream's versions out of this order.
--
-- The price: one long-running transaction that has written anything, anywhere in the
-- cluster, holds the line back, and readers wait for it (they never skip it).

CREATE OR REPLACE FUNCTION pyes.validate_types(p_types text[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_types IS NOT NULL AND (cardinality(p_types) = 0 OR array_position(p_types, NULL) IS NOT NULL) THEN
        RAISE EXCEPTION 'invalid type filter'
            USING ERRCODE = 'PE109',
                  DETAIL = format('The type filter %s is empty or holds a NULL.', p_types),
                  HINT = 'Pass NULL for every type, or an array of event types such as ARRAY[''Deposited''].';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION pyes.read_all(
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
    PERFORM pyes.validate_max_count(p_max_count);
    PERFORM pyes.validate_types(p_types);
    RETURN QUERY
    SELECT e.*
      FROM pyes.recorded_events e
     WHERE (e.transaction_id, e.position) > (v_after.transaction_id, v_after.position)
       AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
       AND (p_types IS NULL OR e.type = ANY (p_types))
     ORDER BY e.transaction_id, e.position
     LIMIT p_max_count;
END;
$$;

-- A checkpoint for "from now on": reading after it skips every event committed before the
-- call (a few of the most recent may still be delivered: at least once, never lost).
CREATE OR REPLACE FUNCTION pyes.head_checkpoint()
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pyes.checkpoint_token(pg_snapshot_xmin(pg_current_snapshot()), 0);
END;
$$;
