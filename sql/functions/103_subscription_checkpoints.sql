-- Saving a partition's checkpoint, fenced by its lease: only the member that holds the
-- partition may move it, and only forward. A member that lost the partition (its lease ran
-- out and another member claimed it) gets PE404 and must stop handling that partition: the
-- new holder delivers again what was not saved (at least once, never skipped).
CREATE OR REPLACE FUNCTION pyes.save_checkpoint(
    p_name text,
    p_member text,
    p_partition integer,
    p_checkpoint text,
    p_handled bigint DEFAULT 0)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_to record := pyes.parse_checkpoint(p_checkpoint);
    v_owner text;
BEGIN
    IF p_checkpoint IS NULL OR p_checkpoint = '' THEN
        RAISE EXCEPTION 'invalid checkpoint NULL'
            USING ERRCODE = 'PE108',
                  DETAIL = 'A saved checkpoint is the checkpoint token of the last event handled, such as ''771/42''.',
                  HINT = 'Pass the "checkpoint" of the event the handler finished.';
    END IF;
    UPDATE pyes.subscription_partitions sp
       SET (checkpoint_xid, checkpoint_position) =
               (SELECT g.x, g.p FROM (VALUES (sp.checkpoint_xid, sp.checkpoint_position), (v_to.transaction_id, v_to."position")) AS g(x, p)
                 ORDER BY g.x DESC, g.p DESC LIMIT 1),
           handled = sp.handled + greatest(coalesce(p_handled, 0), 0),
           updated_at = clock_timestamp()
     WHERE sp.subscription = p_name AND sp."partition" = p_partition AND sp.owner = p_member;
    IF NOT FOUND THEN
        PERFORM pyes.get_subscription(p_name);
        SELECT sp.owner INTO v_owner FROM pyes.subscription_partitions sp
         WHERE sp.subscription = p_name AND sp."partition" = p_partition;
        RAISE EXCEPTION 'member % does not hold partition % of subscription %', quote_literal(p_member),
                        coalesce(p_partition::text, 'NULL'), quote_literal(p_name)
            USING ERRCODE = 'PE404',
                  DETAIL = format('The partition is held by %s. Its lease ran out or was never granted to this member.',
                                  coalesce(quote_literal(v_owner), 'no member')),
                  HINT = 'Stop handling this partition and call pyes.join_subscription again; its holder delivers the unsaved events again.';
    END IF;
END;
$$;
