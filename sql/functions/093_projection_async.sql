-- Asynchronous projections (and the catch-up of inline ones): process the next batch from
-- the checkpoint in the gap-free order (transaction id below the snapshot's xmin, then
-- (transaction_id, position)), and move the checkpoint in the same transaction as the
-- handler's writes, so each event takes effect exactly once. The registry row is locked
-- FOR UPDATE SKIP LOCKED for the batch: one worker per projection at a time, and a crashed
-- worker's lock goes with its connection.

-- The next events of a projection after its checkpoint whose transaction id is below
-- p_below: the caller's xmin line, read once so that every step of a batch uses the same
-- line (NULL: every committed event, for a caller that holds appends back with
-- pyes.lock_appends).
CREATE OR REPLACE FUNCTION pyes.projection_batch(p pyes.projections, p_max_count integer, p_below xid8)
RETURNS pyes.events[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- Worked out once, not per row.
    v_types text[] := pyes.projection_type_names(p.event_types);
BEGIN
    RETURN pyes.upcast_for_projection(ARRAY(
        SELECT e FROM pyes.events e
         WHERE (e.transaction_id, e.position) > (p.checkpoint_xid, p.checkpoint_position)
           AND (p_below IS NULL OR e.transaction_id < p_below)
           AND (v_types IS NULL OR e.type = ANY (v_types) OR e.type = '$rewind')
         ORDER BY e.transaction_id, e.position
         LIMIT p_max_count));
END;
$$;

-- The last event below p_below, of any type, if it is past the projection's checkpoint:
-- where a projection that has seen every event of its types below that line can move its
-- checkpoint to, so that the next batch does not scan the other types' events again.
CREATE OR REPLACE FUNCTION pyes.last_event_below(p pyes.projections, p_below xid8, OUT transaction_id xid8, OUT "position" bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT e.transaction_id, e.position INTO transaction_id, "position" FROM pyes.events e
     WHERE e.transaction_id < p_below
       AND (e.transaction_id, e.position) > (p.checkpoint_xid, p.checkpoint_position)
     ORDER BY e.transaction_id DESC, e.position DESC LIMIT 1;
END;
$$;

-- Record a handler failure: the projection stops (state failed) at its checkpoint, with the
-- event and the error, instead of skipping the event. Resuming retries it.
CREATE OR REPLACE FUNCTION pyes.fail_projection(p_name text, p_version integer, p_event_id uuid, p_sqlstate text, p_error text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pyes.projection_row(p_name, p_version);  -- PE302 if unknown
    IF p_version IS NULL THEN
        PERFORM pyes.invalid_projection_argument('pyes.fail_projection', 'p_version', NULL, 'the version that failed');
    END IF;
    UPDATE pyes.projections r
       SET state = 'failed', failed_event_id = p_event_id, last_error_sqlstate = p_sqlstate,
           last_error = p_error, updated_at = now()
     WHERE r.name = p_name AND r.version = p_version;
END;
$$;

-- Apply a batch; on error, roll the batch back, record the failure and return false.
CREATE OR REPLACE FUNCTION pyes.apply_batch_or_fail(p pyes.projections, p_events pyes.events[])
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
    v_message text;
    v_detail text;
    v_failed pyes.events;
BEGIN
    BEGIN
        PERFORM pyes.apply_projection(p, p_events, p.schema_name);
        RETURN true;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
    END;
    v_failed := pyes.failing_event(p, p_events, p.schema_name);
    PERFORM pyes.fail_projection(p.name, p.version, v_failed.event_id, v_state,
        v_message || CASE WHEN coalesce(v_detail, '') = '' THEN '' ELSE ' (' || v_detail || ')' END);
    RETURN false;
END;
$$;

-- An inline projection that has caught up below the xmin line becomes inline: with appends
-- held back for a moment, apply what remains, then switch. Returns false (and changes
-- nothing) if appends could not be paused now; the next run tries again.
CREATE OR REPLACE FUNCTION pyes.turn_inline(p pyes.projections)
RETURNS pyes.projections
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_events pyes.events[];
    v_n integer;
BEGIN
    BEGIN
        PERFORM pyes.lock_appends('1 second');
    EXCEPTION WHEN SQLSTATE 'PE305' THEN
        RETURN p;
    END;
    LOOP
        v_events := pyes.projection_batch(p, 10000, NULL);
        v_n := cardinality(v_events);
        EXIT WHEN v_n = 0;
        IF NOT pyes.apply_batch_or_fail(p, v_events) THEN
            SELECT * INTO p FROM pyes.projections r WHERE r.name = p.name AND r.version = p.version;
            RETURN p;
        END IF;
        p.checkpoint_xid := (v_events[v_n]).transaction_id;
        p.checkpoint_position := (v_events[v_n]).position;
        p.events_processed := p.events_processed + v_n;
    END LOOP;
    UPDATE pyes.projections r
       SET state = 'running', checkpoint_xid = p.checkpoint_xid, checkpoint_position = p.checkpoint_position,
           events_processed = p.events_processed, caught_up_at = now(), updated_at = now()
     WHERE r.name = p.name AND r.version = p.version
    RETURNING * INTO p;
    RETURN p;
END;
$$;

-- Process the next batch of one projection (p_version NULL: the current version). Returns
-- how many events took effect, the checkpoint, the state after the call, whether it has
-- caught up (nothing left below the xmin line), and busy = another session holds it.
CREATE OR REPLACE FUNCTION pyes.run_projection(
    p_name text,
    p_version integer DEFAULT NULL,
    p_max_count integer DEFAULT 1000,
    OUT processed integer,
    OUT checkpoint text,
    OUT state text,
    OUT caught_up boolean,
    OUT busy boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p pyes.projections;
    v_events pyes.events[];
    v_last record;
    -- One xmin line for the whole batch: what is below it has committed (or never will).
    v_below xid8 := pg_snapshot_xmin(pg_current_snapshot());
BEGIN
    PERFORM pyes.validate_max_count(p_max_count);
    processed := 0;
    busy := false;
    caught_up := false;
    SELECT * INTO p FROM pyes.projections r
     WHERE r.name = p_name AND (r.version = p_version OR (p_version IS NULL AND r.is_current))
       FOR UPDATE SKIP LOCKED;
    IF p.name IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pyes.projections r
                        WHERE r.name = p_name AND (r.version = p_version OR (p_version IS NULL AND r.is_current))) THEN
            PERFORM pyes.projection_row(p_name, p_version);  -- raises PE302
        END IF;
        busy := true;  -- another worker has it: nothing to do here
        state := 'running';
        RETURN;
    END IF;
    IF p.handler IS NULL THEN
        PERFORM pyes.invalid_projection(p_name,
            format('Projection %L version %s is run by Python code, not by an SQL handler.', p.name, p.version),
            'Run it with pyes.ProjectionWorker or `pyes projections run --module ...`.');
    END IF;
    IF p.state NOT IN ('running', 'catching_up') OR (p.mode = 'inline' AND p.state = 'running') THEN
        checkpoint := pyes.checkpoint_token(p.checkpoint_xid, p.checkpoint_position);
        state := p.state;
        caught_up := p.state = 'running';
        RETURN;
    END IF;
    v_events := pyes.projection_batch(p, p_max_count, v_below);
    processed := cardinality(v_events);
    IF processed > 0 THEN
        IF NOT pyes.apply_batch_or_fail(p, v_events) THEN
            processed := 0;
            checkpoint := pyes.checkpoint_token(p.checkpoint_xid, p.checkpoint_position);
            state := 'failed';
            RETURN;
        END IF;
        p.checkpoint_xid := (v_events[processed]).transaction_id;
        p.checkpoint_position := (v_events[processed]).position;
    END IF;
    IF processed < p_max_count THEN
        -- Nothing more of its types below the line: skip past the other types' events too.
        caught_up := true;
        v_last := pyes.last_event_below(p, v_below);
        IF v_last.transaction_id IS NOT NULL THEN
            p.checkpoint_xid := v_last.transaction_id;
            p.checkpoint_position := v_last.position;
        END IF;
    END IF;
    UPDATE pyes.projections r
       SET checkpoint_xid = p.checkpoint_xid, checkpoint_position = p.checkpoint_position,
           events_processed = r.events_processed + processed, updated_at = now(),
           caught_up_at = CASE WHEN caught_up THEN now() ELSE r.caught_up_at END
     WHERE r.name = p.name AND r.version = p.version
    RETURNING * INTO p;
    IF caught_up AND p.mode = 'inline' THEN
        p := pyes.turn_inline(p);
        caught_up := p.state = 'running';
    END IF;
    checkpoint := pyes.checkpoint_token(p.checkpoint_xid, p.checkpoint_position);
    state := p.state;
END;
$$;

-- Projections written in Python: the worker reads the xmin line, claims the next batch below
-- it (the registry row stays locked until its transaction ends; no rows if another worker
-- holds it or nothing is due), applies it with its own writes in the same transaction, then
-- calls pyes.advance_projection with the same line.
CREATE OR REPLACE FUNCTION pyes.claim_projection_batch(p_name text, p_version integer, p_max_count integer, p_below xid8)
RETURNS SETOF pyes.recorded_events
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p pyes.projections;
BEGIN
    PERFORM pyes.validate_max_count(p_max_count);
    IF p_below IS NULL THEN
        PERFORM pyes.invalid_projection_argument('pyes.claim_projection_batch', 'p_below', NULL,
            'the xmin line read just before: pg_snapshot_xmin(pg_current_snapshot())');
    END IF;
    SELECT * INTO p FROM pyes.projections r WHERE r.name = p_name AND r.version = p_version FOR UPDATE SKIP LOCKED;
    IF p.name IS NULL THEN
        PERFORM pyes.projection_row(p_name, p_version);  -- PE302 if unknown
        RETURN;  -- another worker holds it
    END IF;
    IF p.state <> 'running' THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT r.* FROM pyes.recorded_events r
     WHERE r.position = ANY (ARRAY(SELECT (unnest(pyes.projection_batch(p, p_max_count, p_below))).position))
     ORDER BY r.transaction_id, r.position;
END;
$$;

-- Move a Python projection's checkpoint to the last event it applied (p_checkpoint, NULL if
-- none) and, when the batch was not full (p_caught_up), past every other event below the
-- line p_below that its claim used. Runs in the transaction of the projection's writes.
CREATE OR REPLACE FUNCTION pyes.advance_projection(
    p_name text, p_version integer, p_checkpoint text, p_processed integer, p_caught_up boolean, p_below xid8)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p pyes.projections := pyes.projection_row(p_name, p_version);
    v_to record;
BEGIN
    IF p_processed IS NULL OR p_processed < 0 THEN
        PERFORM pyes.invalid_projection_argument('pyes.advance_projection', 'p_processed', p_processed::text,
                                                 'the number of events the batch applied (0 or more)');
    END IF;
    IF p_checkpoint IS NOT NULL THEN
        v_to := pyes.parse_checkpoint(p_checkpoint);
        IF (v_to.transaction_id, v_to.position) <= (p.checkpoint_xid, p.checkpoint_position) THEN
            RAISE EXCEPTION 'a projection checkpoint only moves forward'
                USING ERRCODE = 'PE109',
                      DETAIL = format('Projection %L version %s is at %s; %s is not after it.', p.name, p.version,
                                      pyes.checkpoint_token(p.checkpoint_xid, p.checkpoint_position), p_checkpoint),
                      HINT = 'Pass the checkpoint of the last event of the batch you claimed.';
        END IF;
        p.checkpoint_xid := v_to.transaction_id;
        p.checkpoint_position := v_to.position;
    END IF;
    IF p_caught_up AND p_below IS NOT NULL THEN
        v_to := pyes.last_event_below(p, p_below);
        IF v_to.transaction_id IS NOT NULL THEN
            p.checkpoint_xid := v_to.transaction_id;
            p.checkpoint_position := v_to.position;
        END IF;
    END IF;
    UPDATE pyes.projections r
       SET checkpoint_xid = p.checkpoint_xid, checkpoint_position = p.checkpoint_position,
           events_processed = r.events_processed + coalesce(p_processed, 0), updated_at = now(),
           caught_up_at = CASE WHEN p_caught_up THEN now() ELSE r.caught_up_at END
     WHERE r.name = p.name AND r.version = p.version;
    RETURN pyes.checkpoint_token(p.checkpoint_xid, p.checkpoint_position);
END;
$$;
