-- Applying events to a projection: the one code path used inline, asynchronously, in
-- rebuilds and in temporal builds. Handlers run with search_path = <the projection's schema
-- (or a temporal copy's)>, pg_catalog, pg_temp: pyes chooses it, so no caller's path can
-- hijack them, and unqualified table names in a handler resolve to the tables being built.

-- The versions whose events make up a stream's state at version p_version, in order. Events
-- count unless a later $rewind cancelled them; rewinds nest. (A normal event v extends the
-- state at v - 1; a $rewind at v to n makes the state at v that at n.)
CREATE OR REPLACE FUNCTION pyes.effective_versions(p_stream_id text, p_version bigint)
RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- head[v + 1]: the last effective event at version v (0: none); prev[v]: the effective
    -- event before event v. Together they are a tree whose paths are the states.
    v_head bigint[] := ARRAY[0]::bigint[];
    v_prev bigint[] := '{}';
    v_node bigint;
    v_result bigint[] := '{}';
    r record;
BEGIN
    FOR r IN SELECT e.version, e.type, e.data FROM pyes.events e
              WHERE e.stream_id = p_stream_id AND e.version <= p_version ORDER BY e.version LOOP
        IF r.type = '$rewind' THEN
            v_head[r.version + 1] := v_head[(r.data ->> 'to_version')::bigint + 1];
        ELSE
            v_prev[r.version] := v_head[r.version];
            v_head[r.version + 1] := r.version;
        END IF;
    END LOOP;
    v_node := coalesce(v_head[p_version + 1], 0);
    WHILE v_node <> 0 LOOP
        v_result := v_result || v_node;
        v_node := v_prev[v_node];
    END LOOP;
    RETURN ARRAY(SELECT x FROM unnest(v_result) x ORDER BY x);
END;
$$;

-- Hooks for schema evolution. Here (revision pyes_0003) they change nothing; the event
-- schemas revision (sql/functions/127_projection_evolution.sql) replaces them, so that
-- handlers receive events in their current shape and a type filter also finds the events
-- stored under a type's former names.

-- The events as handlers receive them.
CREATE OR REPLACE FUNCTION pyes.upcast_for_projection(p_events pyes.events[])
RETURNS pyes.events[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN p_events;
END;
$$;

-- The stored type names whose events a filter on p_types must read (NULL: every type).
CREATE OR REPLACE FUNCTION pyes.projection_type_names(p_types text[])
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN p_types;
END;
$$;

-- "schema.function" of a handler, for dynamic calls.
CREATE OR REPLACE FUNCTION pyes.handler_name(p_handler regprocedure)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- regproc's output is schema-qualified (the path holds only pg_catalog) and quoted.
    RETURN p_handler::oid::regproc::text;
END;
$$;

-- The handler over a run of events with no $rewind among them: one dynamic statement for
-- the whole run (not one per event), the handler called per row in array order, or once
-- with the whole run if it is a batch handler (pyes.handler_takes_batch).
CREATE OR REPLACE FUNCTION pyes.call_projection_handler(p pyes.projections, p_events pyes.events[], p_schema text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(cardinality(p_events), 0) = 0 THEN
        RETURN;
    END IF;
    -- Local to this call: the pinned path comes back when it returns.
    PERFORM set_config('search_path', format('%I, pg_catalog, pg_temp', p_schema), true);
    IF pyes.handler_takes_batch(p.handler) THEN
        EXECUTE format('SELECT %s($1)', pyes.handler_name(p.handler)) USING p_events;
    ELSE
        EXECUTE format('SELECT %s(e) FROM unnest($1) AS e', pyes.handler_name(p.handler)) USING p_events;
    END IF;
END;
$$;

-- The events of a stream with the given versions that the projection reads, in p_order.
CREATE OR REPLACE FUNCTION pyes.stream_events_for(p pyes.projections, p_stream_id text, p_versions bigint[], p_descending boolean DEFAULT false)
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
         WHERE e.stream_id = p_stream_id AND e.version = ANY (p_versions)
           AND (v_types IS NULL OR e.type = ANY (v_types))
         ORDER BY CASE WHEN p_descending THEN -e.version ELSE e.version END));
END;
$$;

-- A $rewind met by a projection (see docs/projections.md#rewinds):
--  * keyed by stream: delete the stream's rows and apply its events as of the target version;
--  * with a rewind handler: call it with the events the rewind cancels (newest first), then
--    apply the events it brings back (a rewind to before an earlier rewind);
--  * otherwise: mark the projection as needing a rebuild (p_strict: raise PE308 instead).
CREATE OR REPLACE FUNCTION pyes.project_rewind(p pyes.projections, p_rewind pyes.events, p_schema text, p_strict boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_to bigint := (p_rewind.data ->> 'to_version')::bigint;
    v_table text;
    v_before bigint[];
    v_after bigint[];
BEGIN
    IF p.stream_column IS NOT NULL THEN
        FOREACH v_table IN ARRAY p.tables LOOP
            EXECUTE format('DELETE FROM %I.%I WHERE %I = $1', p_schema, v_table, p.stream_column) USING p_rewind.stream_id;
        END LOOP;
        PERFORM pyes.call_projection_handler(p, pyes.stream_events_for(p, p_rewind.stream_id, pyes.effective_versions(p_rewind.stream_id, v_to)), p_schema);
    ELSIF p.rewind_handler IS NOT NULL THEN
        v_before := pyes.effective_versions(p_rewind.stream_id, p_rewind.version - 1);
        v_after := pyes.effective_versions(p_rewind.stream_id, v_to);
        PERFORM set_config('search_path', format('%I, pg_catalog, pg_temp', p_schema), true);
        EXECUTE format('SELECT %s($1, $2)', pyes.handler_name(p.rewind_handler))
          USING p_rewind, pyes.stream_events_for(p, p_rewind.stream_id,
                                                 ARRAY(SELECT x FROM unnest(v_before) x WHERE x <> ALL (v_after)), true);
        PERFORM pyes.call_projection_handler(p, pyes.stream_events_for(p, p_rewind.stream_id,
                                                 ARRAY(SELECT x FROM unnest(v_after) x WHERE x <> ALL (v_before))), p_schema);
    ELSIF p_strict THEN
        RAISE EXCEPTION 'projection % cannot apply a rewind', quote_literal(p.name)
            USING ERRCODE = 'PE308',
                  DETAIL = format('Stream %L was rewound to version %s (event %s), and projection %L version %s is neither keyed by stream nor has a rewind handler.',
                                  p_rewind.stream_id, v_to, p_rewind.event_id, p.name, p.version),
                  HINT = 'Register the projection with p_stream_column or p_rewind_handler.';
    ELSE
        UPDATE pyes.projections r
           SET needs_rebuild = true, updated_at = now(),
               needs_rebuild_reason = coalesce(r.needs_rebuild_reason,
                   format('stream %L was rewound to version %s by event %s (position %s), and the projection is neither keyed by stream nor has a rewind handler',
                          p_rewind.stream_id, v_to, p_rewind.event_id, p_rewind.position))
         WHERE r.name = p.name AND r.version = p.version;
    END IF;
END;
$$;

-- Apply events (already filtered to the projection's types, $rewind included) in order.
CREATE OR REPLACE FUNCTION pyes.apply_projection(p pyes.projections, p_events pyes.events[], p_schema text, p_strict boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rewinds integer[];
    v_start integer := 1;
    v_at integer;
BEGIN
    IF coalesce(cardinality(p_events), 0) = 0 THEN
        RETURN;
    END IF;
    v_rewinds := ARRAY(SELECT u.ordinality FROM unnest(p_events) WITH ORDINALITY AS u
                        WHERE u.type = '$rewind' ORDER BY u.ordinality);
    FOREACH v_at IN ARRAY v_rewinds LOOP
        IF v_at > v_start THEN
            PERFORM pyes.call_projection_handler(p, p_events[v_start:v_at - 1], p_schema);
        END IF;
        PERFORM pyes.project_rewind(p, p_events[v_at], p_schema, p_strict);
        v_start := v_at + 1;
    END LOOP;
    IF v_start = 1 THEN
        PERFORM pyes.call_projection_handler(p, p_events, p_schema);
    ELSIF v_start <= cardinality(p_events) THEN
        PERFORM pyes.call_projection_handler(p, p_events[v_start:cardinality(p_events)], p_schema);
    END IF;
END;
$$;

-- Which event of a batch makes the handler fail: apply them one by one, then undo it all.
CREATE OR REPLACE FUNCTION pyes.failing_event(p pyes.projections, p_events pyes.events[], p_schema text)
RETURNS pyes.events
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event pyes.events;
BEGIN
    BEGIN
        FOREACH v_event IN ARRAY p_events LOOP
            PERFORM pyes.apply_projection(p, ARRAY[v_event], p_schema);
        END LOOP;
        v_event := NULL;
        -- Never escapes: caught just below, only to roll the block back.
        RAISE EXCEPTION 'undo the trial run' USING ERRCODE = 'PE399';
    EXCEPTION WHEN OTHERS THEN
        NULL;  -- everything above is rolled back; v_event keeps the failing event (or NULL)
    END;
    RETURN v_event;
END;
$$;
