-- Replay: the events of a past window, in the gap-free global order, for running a handler
-- over history without touching any subscription. A window is (p_after, p_upto] in
-- checkpoints and [p_since, p_until) in recorded_at, any bound NULL meaning open, optionally
-- restricted to categories and types.

CREATE OR REPLACE FUNCTION pyes.validate_window(p_after text, p_upto text, p_since timestamptz, p_until timestamptz)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_after record := pyes.parse_checkpoint(p_after);
    v_upto record := pyes.parse_checkpoint(p_upto);
BEGIN
    IF p_since IS NOT NULL AND p_until IS NOT NULL AND p_since > p_until THEN
        RAISE EXCEPTION 'invalid replay window'
            USING ERRCODE = 'PE406',
                  DETAIL = format('The window starts at %s, after its end %s.', p_since, p_until),
                  HINT = 'Swap the two moments: from is the earlier one (included), to the later (excluded).';
    END IF;
    IF p_upto IS NOT NULL AND p_upto <> '' AND (v_after.transaction_id, v_after."position") > (v_upto.transaction_id, v_upto."position") THEN
        RAISE EXCEPTION 'invalid replay window'
            USING ERRCODE = 'PE406',
                  DETAIL = format('The window starts after checkpoint %s, which is past its end %s.', p_after, p_upto),
                  HINT = 'Swap the two checkpoints: from is the earlier one (excluded), to the later (included).';
    END IF;
END;
$$;

-- The events of the window, p_max_count at a time: pass the last checkpoint as p_after.
CREATE OR REPLACE FUNCTION pyes.read_window(
    p_after text,
    p_upto text,
    p_since timestamptz,
    p_until timestamptz,
    p_categories text[] DEFAULT NULL,
    p_types text[] DEFAULT NULL,
    p_max_count integer DEFAULT 1000)
RETURNS SETOF pyes.recorded_events
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_after record := pyes.parse_checkpoint(p_after);
    v_upto_xid xid8;
    v_upto_pos bigint;
    v_line xid8 := pg_snapshot_xmin(pg_current_snapshot());
BEGIN
    PERFORM pyes.validate_window(p_after, p_upto, p_since, p_until);
    PERFORM pyes.validate_subscription_filters(p_categories, p_types);
    PERFORM pyes.validate_max_count(p_max_count);
    IF p_upto IS NULL OR p_upto = '' THEN
        v_upto_xid := '18446744073709551615'::xid8;
        v_upto_pos := 9223372036854775807;
    ELSE
        SELECT c.transaction_id, c."position" INTO v_upto_xid, v_upto_pos FROM pyes.parse_checkpoint(p_upto) c;
    END IF;
    RETURN QUERY
    SELECT e.* FROM pyes.recorded_events e
     WHERE (e.transaction_id, e.position) > (v_after.transaction_id, v_after.position)
       AND (e.transaction_id, e.position) <= (v_upto_xid, v_upto_pos)
       AND e.transaction_id < v_line
       AND (p_since IS NULL OR e.recorded_at >= p_since)
       AND (p_until IS NULL OR e.recorded_at < p_until)
       AND (p_categories IS NULL OR e.category = ANY (p_categories))
       AND (p_types IS NULL OR e.type = ANY (p_types))
     ORDER BY e.transaction_id, e.position
     LIMIT p_max_count;
END;
$$;

-- How many events the window holds, and the tightest checkpoints around them (after: just
-- before the first; upto: the last), so that paging with pyes.read_window scans only that
-- range of the global order index. Three passes over the events in range: call it once,
-- then page.
CREATE OR REPLACE FUNCTION pyes.window_bounds(
    p_after text,
    p_upto text,
    p_since timestamptz,
    p_until timestamptz,
    p_categories text[] DEFAULT NULL,
    p_types text[] DEFAULT NULL,
    OUT events bigint,
    OUT after text,
    OUT upto text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_after record := pyes.parse_checkpoint(p_after);
    v_upto_xid xid8;
    v_upto_pos bigint;
    v_line xid8 := pg_snapshot_xmin(pg_current_snapshot());
    v_xid xid8;
    v_pos bigint;
BEGIN
    PERFORM pyes.validate_window(p_after, p_upto, p_since, p_until);
    PERFORM pyes.validate_subscription_filters(p_categories, p_types);
    IF p_upto IS NULL OR p_upto = '' THEN
        v_upto_xid := '18446744073709551615'::xid8;
        v_upto_pos := 9223372036854775807;
    ELSE
        SELECT c.transaction_id, c."position" INTO v_upto_xid, v_upto_pos FROM pyes.parse_checkpoint(p_upto) c;
    END IF;
    SELECT count(*) INTO events FROM pyes.events e
     WHERE (e.transaction_id, e.position) > (v_after.transaction_id, v_after.position)
       AND (e.transaction_id, e.position) <= (v_upto_xid, v_upto_pos)
       AND e.transaction_id < v_line
       AND (p_since IS NULL OR e.recorded_at >= p_since)
       AND (p_until IS NULL OR e.recorded_at < p_until)
       AND (p_categories IS NULL OR e.category = ANY (p_categories))
       AND (p_types IS NULL OR e.type = ANY (p_types));
    IF events = 0 THEN
        RETURN;
    END IF;
    SELECT e.transaction_id, e.position INTO v_xid, v_pos FROM pyes.events e
     WHERE (e.transaction_id, e.position) > (v_after.transaction_id, v_after.position)
       AND (e.transaction_id, e.position) <= (v_upto_xid, v_upto_pos)
       AND e.transaction_id < v_line
       AND (p_since IS NULL OR e.recorded_at >= p_since)
       AND (p_until IS NULL OR e.recorded_at < p_until)
       AND (p_categories IS NULL OR e.category = ANY (p_categories))
       AND (p_types IS NULL OR e.type = ANY (p_types))
     ORDER BY e.transaction_id, e.position LIMIT 1;
    after := pyes.checkpoint_token(v_xid, v_pos - 1);
    SELECT e.transaction_id, e.position INTO v_xid, v_pos FROM pyes.events e
     WHERE (e.transaction_id, e.position) > (v_after.transaction_id, v_after.position)
       AND (e.transaction_id, e.position) <= (v_upto_xid, v_upto_pos)
       AND e.transaction_id < v_line
       AND (p_since IS NULL OR e.recorded_at >= p_since)
       AND (p_until IS NULL OR e.recorded_at < p_until)
       AND (p_categories IS NULL OR e.category = ANY (p_categories))
       AND (p_types IS NULL OR e.type = ANY (p_types))
     ORDER BY e.transaction_id DESC, e.position DESC LIMIT 1;
    upto := pyes.checkpoint_token(v_xid, v_pos);
END;
$$;
