-- Where each projection stands: checkpoint, lag in events and in seconds, state, last error,
-- and, when committed events are held back from the projection by an older transaction
-- still running somewhere in the cluster (the xmin line), which backend holds it.

-- The backend (or prepared transaction) whose transaction id is the snapshot's xmin.
CREATE OR REPLACE FUNCTION pyes.xmin_holder()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_xmin xid8 := pg_snapshot_xmin(pg_current_snapshot());
    v_holder text;
BEGIN
    -- backend_xid is a 32-bit xid: compare it with the low 32 bits of the xid8.
    SELECT format('pid %s (%s, user %s, database %s, %s since %s): %s', a.pid,
                  coalesce(nullif(a.application_name, ''), 'no application_name'), a.usename, a.datname,
                  a.state, date_trunc('second', a.xact_start), left(a.query, 200))
      INTO v_holder
      FROM pg_catalog.pg_stat_activity a
     WHERE a.backend_xid IS NOT NULL
       AND a.backend_xid::text::bigint = (v_xmin::text::numeric % 4294967296)::bigint
     LIMIT 1;
    IF v_holder IS NULL THEN
        SELECT format('prepared transaction %L (owner %s, database %s, prepared at %s)', x.gid, x.owner, x.database,
                      date_trunc('second', x.prepared))
          INTO v_holder
          FROM pg_catalog.pg_prepared_xacts x
         WHERE x.transaction::text::bigint = (v_xmin::text::numeric % 4294967296)::bigint
         LIMIT 1;
    END IF;
    RETURN v_holder;
END;
$$;

CREATE OR REPLACE FUNCTION pyes.projection_status(p_name text DEFAULT NULL)
RETURNS TABLE (
    name text,
    version integer,
    mode text,
    runner text,
    state text,
    is_current boolean,
    checkpoint text,
    events_processed bigint,
    lag_events bigint,
    lag_seconds double precision,
    held_by text,
    needs_rebuild boolean,
    needs_rebuild_reason text,
    last_error text,
    last_error_sqlstate text,
    failed_event_id uuid,
    updated_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_xmin xid8 := pg_snapshot_xmin(pg_current_snapshot());
    p pyes.projections;
    v_behind record;
    v_types text[];
BEGIN
    FOR p IN SELECT * FROM pyes.projections r WHERE p_name IS NULL OR r.name = p_name ORDER BY r.name, r.version LOOP
        name := p.name;
        version := p.version;
        mode := p.mode;
        runner := CASE WHEN p.handler IS NULL THEN 'python' ELSE 'sql' END;
        state := p.state;
        is_current := p.is_current;
        checkpoint := pyes.checkpoint_token(p.checkpoint_xid, p.checkpoint_position);
        events_processed := p.events_processed;
        needs_rebuild := p.needs_rebuild;
        needs_rebuild_reason := p.needs_rebuild_reason;
        last_error := p.last_error;
        last_error_sqlstate := p.last_error_sqlstate;
        failed_event_id := p.failed_event_id;
        updated_at := p.updated_at;
        held_by := NULL;
        IF p.mode = 'inline' AND p.state = 'running' THEN
            lag_events := 0;  -- applied in the appending transactions themselves
            lag_seconds := 0;
        ELSE
            v_types := pyes.projection_type_names(p.event_types);  -- once, not per row
            SELECT count(*) AS n, min(e.recorded_at) AS oldest,
                   count(*) FILTER (WHERE e.transaction_id >= v_xmin) AS held
              INTO v_behind
              FROM pyes.events e
             WHERE (e.transaction_id, e.position) > (p.checkpoint_xid, p.checkpoint_position)
               AND (v_types IS NULL OR e.type = ANY (v_types) OR e.type = '$rewind');
            lag_events := v_behind.n;
            lag_seconds := coalesce(extract(epoch FROM now() - v_behind.oldest)::double precision, 0);
            IF v_behind.held > 0 THEN
                held_by := coalesce(pyes.xmin_holder(),
                    format('a transaction with id %s (not visible in pg_stat_activity to this role)', v_xmin));
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
