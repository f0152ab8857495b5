-- What one partition of a subscription reads next: the subscription's events after p_after
-- in the gap-free global order (see 051_read_all.sql), restricted to its categories, types
-- and the partition. Callers that want to know how far a short page lets them move their
-- checkpoint take pyes.head_checkpoint() in the same statement: when fewer than p_max_count
-- rows come back, nothing of the partition is left below it.
CREATE OR REPLACE FUNCTION pyes.read_subscription(
    p_name text,
    p_partition integer,
    p_after text,
    p_max_count integer DEFAULT 1000)
RETURNS SETOF pyes.recorded_events
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sub pyes.subscriptions := pyes.get_subscription(p_name);
    v_after record := pyes.parse_checkpoint(p_after);
    v_line xid8 := pg_snapshot_xmin(pg_current_snapshot());
BEGIN
    PERFORM pyes.validate_max_count(p_max_count);
    IF p_partition IS NULL OR p_partition < 0 OR p_partition >= v_sub.partitions THEN
        RAISE EXCEPTION 'invalid partition %', coalesce(p_partition::text, 'NULL')
            USING ERRCODE = 'PE403',
                  DETAIL = format('Subscription %s has partitions 0 to %s.', quote_literal(p_name), v_sub.partitions - 1),
                  HINT = 'Read the partitions pyes.join_subscription gave this member.';
    END IF;
    IF v_sub.categories IS NULL THEN
        RETURN QUERY
        SELECT e.* FROM pyes.recorded_events e
         WHERE (e.transaction_id, e.position) > (v_after.transaction_id, v_after.position)
           AND e.transaction_id < v_line
           AND (v_sub.types IS NULL OR e.type = ANY (v_sub.types))
           AND (v_sub.partitions = 1 OR pyes.stream_partition(e.stream_id, v_sub.partitions) = p_partition)
         ORDER BY e.transaction_id, e.position
         LIMIT p_max_count;
    ELSIF cardinality(v_sub.categories) = 1 THEN
        -- One category: the category index gives the order directly.
        RETURN QUERY
        SELECT e.* FROM pyes.recorded_events e
         WHERE e.category = v_sub.categories[1]
           AND (e.transaction_id, e.position) > (v_after.transaction_id, v_after.position)
           AND e.transaction_id < v_line
           AND (v_sub.types IS NULL OR e.type = ANY (v_sub.types))
           AND (v_sub.partitions = 1 OR pyes.stream_partition(e.stream_id, v_sub.partitions) = p_partition)
         ORDER BY e.transaction_id, e.position
         LIMIT p_max_count;
    ELSE
        RETURN QUERY
        SELECT e.* FROM pyes.recorded_events e
         WHERE e.category = ANY (v_sub.categories)
           AND (e.transaction_id, e.position) > (v_after.transaction_id, v_after.position)
           AND e.transaction_id < v_line
           AND (v_sub.types IS NULL OR e.type = ANY (v_sub.types))
           AND (v_sub.partitions = 1 OR pyes.stream_partition(e.stream_id, v_sub.partitions) = p_partition)
         ORDER BY e.transaction_id, e.position
         LIMIT p_max_count;
    END IF;
END;
$$;
