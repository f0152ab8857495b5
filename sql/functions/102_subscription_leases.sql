-- Consumer groups: members share a subscription's partitions through leases kept in the
-- database, on the database's clock (docs/subscriptions.md, "Consumer groups").
--
-- Every member calls pyes.join_subscription every few seconds (a third of its lease). The
-- call renews the member and the partitions it holds, forgets members whose lease ran out,
-- and deals the partitions over the live members sorted by id: member k of n should hold
-- the partitions p with p % n = k. It claims those that are free (no owner, or an owner
-- whose lease ran out) and returns every partition it holds (held = true), with keep =
-- false for those
-- it should hand over, and (held = false) those dealt to it that another member still
-- holds (until that one hands them back or its lease runs out). The member finishes its current event, saves that partition's
-- checkpoint and releases it (pyes.release_partitions); the next member claims it at its
-- next call. A partition is never held by two members at once, so a stream is handled by
-- one member at a time, in order; a member whose lease ran out (it died, or lost the
-- database) loses the right to save checkpoints (PE404) and its events are delivered again.

CREATE OR REPLACE FUNCTION pyes.validate_lease_seconds(p_seconds double precision)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_seconds IS NULL OR NOT (p_seconds >= 0.1 AND p_seconds <= 3600) THEN
        RAISE EXCEPTION 'invalid lease duration %', coalesce(p_seconds::text, 'NULL')
            USING ERRCODE = 'PE403',
                  DETAIL = 'A lease lasts 0.1 to 3600 seconds.',
                  HINT = 'Renew the lease every third of its duration; 10 seconds suits most workers.';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION pyes.join_subscription(p_name text, p_member text, p_lease_seconds double precision DEFAULT 10)
RETURNS TABLE ("partition" integer, checkpoint text, keep boolean, held boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sub pyes.subscriptions := pyes.get_subscription(p_name);
    v_now timestamptz := clock_timestamp();
    v_expires timestamptz;
    v_members text[];
    v_count integer;
    v_index integer;
BEGIN
    PERFORM pyes.validate_subscription_name('member id', p_member);
    PERFORM pyes.validate_lease_seconds(p_lease_seconds);
    v_expires := v_now + make_interval(secs => p_lease_seconds);

    INSERT INTO pyes.subscription_members AS m (subscription, member_id, expires_at)
    VALUES (p_name, p_member, v_expires)
    ON CONFLICT (subscription, member_id) DO UPDATE SET expires_at = EXCLUDED.expires_at;
    DELETE FROM pyes.subscription_members m WHERE m.subscription = p_name AND m.expires_at < v_now;

    SELECT array_agg(m.member_id ORDER BY m.member_id) INTO v_members
      FROM pyes.subscription_members m WHERE m.subscription = p_name;
    v_count := cardinality(v_members);
    v_index := array_position(v_members, p_member) - 1;

    -- Renew what this member holds, then claim what is dealt to it and free. Rows are
    -- locked in partition order by every member, so two members never deadlock here.
    PERFORM 1 FROM pyes.subscription_partitions sp
      WHERE sp.subscription = p_name
        AND (sp.owner = p_member OR sp."partition" % v_count = v_index)
      ORDER BY sp."partition"
      FOR UPDATE;
    UPDATE pyes.subscription_partitions sp SET lease_expires_at = v_expires
     WHERE sp.subscription = p_name AND sp.owner = p_member;
    UPDATE pyes.subscription_partitions sp SET owner = p_member, lease_expires_at = v_expires, updated_at = v_now
     WHERE sp.subscription = p_name AND sp."partition" % v_count = v_index
       AND (sp.owner IS NULL OR sp.lease_expires_at < v_now);

    RETURN QUERY
    SELECT sp."partition", pyes.checkpoint_token(sp.checkpoint_xid, sp.checkpoint_position),
           sp."partition" % v_count = v_index, sp.owner IS NOT DISTINCT FROM p_member
      FROM pyes.subscription_partitions sp
     WHERE sp.subscription = p_name AND (sp.owner = p_member OR sp."partition" % v_count = v_index)
     ORDER BY sp."partition";
END;
$$;

-- Hands partitions back (after saving their checkpoints): the next member to call
-- pyes.join_subscription may claim them at once. Returns how many were released.
CREATE OR REPLACE FUNCTION pyes.release_partitions(p_name text, p_member text, p_partitions integer[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_released integer;
BEGIN
    UPDATE pyes.subscription_partitions sp SET owner = NULL, lease_expires_at = NULL, updated_at = clock_timestamp()
     WHERE sp.subscription = p_name AND sp.owner = p_member
       AND (p_partitions IS NULL OR sp."partition" = ANY (p_partitions));
    GET DIAGNOSTICS v_released = ROW_COUNT;
    RETURN v_released;
END;
$$;

-- A member leaves: releases everything it holds and is forgotten, so that the others deal
-- its partitions among themselves at their next call.
CREATE OR REPLACE FUNCTION pyes.leave_subscription(p_name text, p_member text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pyes.release_partitions(p_name, p_member, NULL);
    DELETE FROM pyes.subscription_members m WHERE m.subscription = p_name AND m.member_id = p_member;
END;
$$;
