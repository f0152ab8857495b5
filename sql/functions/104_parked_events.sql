-- Parked events (dead letters): an event whose handler failed every attempt is recorded
-- here with the error, and the subscription's checkpoint moves past it, in one transaction.

CREATE OR REPLACE FUNCTION pyes.park_event(
    p_name text,
    p_member text,
    p_partition integer,
    p_event_id uuid,
    p_error text,
    p_attempts integer)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event record;
    v_id bigint;
BEGIN
    PERFORM pyes.get_subscription(p_name);
    SELECT e.event_id, e.position, e.stream_id, e.type, e.checkpoint INTO v_event
      FROM pyes.recorded_events e WHERE e.event_id = p_event_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown event %', coalesce(p_event_id::text, 'NULL')
            USING ERRCODE = 'PE405',
                  DETAIL = 'Only a stored event can be parked.',
                  HINT = 'Pass the event_id of the event the handler failed on.';
    END IF;
    IF p_attempts IS NULL OR p_attempts < 1 THEN
        RAISE EXCEPTION 'invalid attempt count %', coalesce(p_attempts::text, 'NULL')
            USING ERRCODE = 'PE403',
                  DETAIL = 'An event is parked after at least one failed attempt.',
                  HINT = 'Pass how many times the handler was run on the event.';
    END IF;
    INSERT INTO pyes.parked_events AS pe (subscription, event_id, "position", stream_id, type, checkpoint, error, attempts)
    VALUES (p_name, v_event.event_id, v_event.position, v_event.stream_id, v_event.type, v_event.checkpoint,
            coalesce(p_error, ''), p_attempts)
    ON CONFLICT (subscription, event_id) DO UPDATE
       SET error = EXCLUDED.error, attempts = pe.attempts + EXCLUDED.attempts,
           last_attempt_at = clock_timestamp(), retry_requested_at = NULL
    RETURNING pe.id INTO v_id;
    PERFORM pyes.save_checkpoint(p_name, p_member, p_partition, v_event.checkpoint, 1);
    RETURN v_id;
END;
$$;

-- The ids among p_ids that are not parked events of the subscription: PE405 if any.
CREATE OR REPLACE FUNCTION pyes.check_parked_ids(p_name text, p_ids bigint[])
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_missing bigint[];
BEGIN
    PERFORM pyes.get_subscription(p_name);
    IF p_ids IS NULL THEN
        RETURN;
    END IF;
    SELECT array_agg(i ORDER BY i) INTO v_missing
      FROM unnest(p_ids) AS i
     WHERE i IS NULL OR NOT EXISTS (SELECT 1 FROM pyes.parked_events pe WHERE pe.subscription = p_name AND pe.id = i);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'no parked event % in subscription %', array_to_string(v_missing, ', ', 'NULL'), quote_literal(p_name)
            USING ERRCODE = 'PE405',
                  DETAIL = format('Parked event ids %s are not parked events of %s (already retried, discarded, or of another subscription). Nothing was changed.',
                                  array_to_string(v_missing, ', ', 'NULL'), quote_literal(p_name)),
                  HINT = 'List them with pyes parked list (or SELECT FROM pyes.parked_events).';
    END IF;
END;
$$;

-- Asks a running member of the subscription to run the handler again on these parked
-- events (NULL: all of them). On success the parked row is deleted; on failure it stays,
-- with the new error and its attempts added. Returns how many were marked.
CREATE OR REPLACE FUNCTION pyes.retry_parked(p_name text, p_ids bigint[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM pyes.check_parked_ids(p_name, p_ids);
    UPDATE pyes.parked_events pe SET retry_requested_at = clock_timestamp()
     WHERE pe.subscription = p_name AND (p_ids IS NULL OR pe.id = ANY (p_ids));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;

-- Forgets parked events (NULL: all of the subscription's). Returns how many.
CREATE OR REPLACE FUNCTION pyes.discard_parked(p_name text, p_ids bigint[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM pyes.check_parked_ids(p_name, p_ids);
    DELETE FROM pyes.parked_events pe
     WHERE pe.subscription = p_name AND (p_ids IS NULL OR pe.id = ANY (p_ids));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;

-- For workers: takes up to p_max retry requests (each is taken by one member only).
CREATE OR REPLACE FUNCTION pyes.take_parked_retries(p_name text, p_max integer DEFAULT 10)
RETURNS TABLE (id bigint, event_id uuid, attempts integer)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    UPDATE pyes.parked_events pe SET retry_requested_at = NULL
     WHERE pe.id IN (SELECT q.id FROM pyes.parked_events q
                      WHERE q.subscription = p_name AND q.retry_requested_at IS NOT NULL
                      ORDER BY q.id LIMIT greatest(coalesce(p_max, 10), 1)
                      FOR UPDATE SKIP LOCKED)
    RETURNING pe.id, pe.event_id, pe.attempts;
END;
$$;

-- For workers: the outcome of a retry. Success deletes the parked row; failure records the
-- error and the attempts made.
CREATE OR REPLACE FUNCTION pyes.finish_parked_retry(p_id bigint, p_error text DEFAULT NULL, p_attempts integer DEFAULT 1)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_error IS NULL THEN
        DELETE FROM pyes.parked_events pe WHERE pe.id = p_id;
    ELSE
        UPDATE pyes.parked_events pe
           SET error = p_error, attempts = pe.attempts + greatest(coalesce(p_attempts, 1), 1), last_attempt_at = clock_timestamp()
         WHERE pe.id = p_id;
    END IF;
END;
$$;
