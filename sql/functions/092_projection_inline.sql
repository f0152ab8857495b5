-- Inline projections: applied by a trigger in the appending transaction, so the read model
-- is never behind the events. One call per appending statement (a transition table holds
-- the statement's events). A handler error aborts the append with PE301, naming the
-- projection, the event and the error.
--
-- The trigger function pyes.project_inline() is GENERATED from the registry whenever the set
-- of inline projections that run changes (a statement trigger on pyes.projections calls
-- pyes.refresh_inline_dispatch). It calls each handler by name in static SQL, so PostgreSQL
-- plans that call once per session instead of parsing a dynamic statement on every append,
-- and an append with no inline projection pays for one empty function call. Those changes
-- happen with appends held back (pyes.lock_appends), so an append runs either the old or
-- the new function, never a mix.

-- Raise PE301 for an inline handler that failed on one of p_events.
CREATE OR REPLACE FUNCTION pyes.raise_inline_failure(
    p_name text, p_version integer, p_events pyes.events[], p_state text, p_message text, p_detail text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p pyes.projections;
    v_failed pyes.events;
BEGIN
    SELECT * INTO p FROM pyes.projections r WHERE r.name = p_name AND r.version = p_version;
    v_failed := CASE WHEN cardinality(p_events) = 1 THEN p_events[1] ELSE pyes.failing_event(p, p_events, p.schema_name) END;
    RAISE EXCEPTION 'inline projection % failed: %', quote_literal(p_name), p_message
        USING ERRCODE = 'PE301',
              DETAIL = format('Projection %L version %s (handler %s) failed on event %s (%s, stream %L version %s) with SQLSTATE %s: %s%s. Nothing was appended.',
                              p_name, p_version, p.handler, coalesce(v_failed.event_id::text, '?'), coalesce(v_failed.type, '?'),
                              v_failed.stream_id, coalesce(v_failed.version::text, '?'), p_state, p_message,
                              CASE WHEN coalesce(p_detail, '') = '' THEN '' ELSE ' (' || p_detail || ')' END),
              HINT = 'Fix the handler (CREATE OR REPLACE FUNCTION) and append again, or pause the projection (pyes.pause_projection) to let appends through meanwhile.';
END;
$$;

-- One block of pyes.project_inline() per inline projection that runs now ('' if none). A
-- block reads the statement's events from v_all and uses v_events, v_state, v_message and
-- v_detail (see pyes.inline_dispatch_source).
CREATE OR REPLACE FUNCTION pyes.inline_projection_blocks()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p pyes.projections;
    v_blocks text := '';
BEGIN
    FOR p IN SELECT * FROM pyes.projections r WHERE r.mode = 'inline' AND r.state = 'running'
              ORDER BY r.name, r.version LOOP
        v_blocks := v_blocks || format($block$
    -- projection %1$L version %2$s
    v_events := ARRAY(SELECT e FROM unnest(v_all) AS e WHERE %3$s);
    IF cardinality(v_events) > 0 THEN
        BEGIN
            IF EXISTS (SELECT 1 FROM unnest(v_events) AS e WHERE e.type = '$rewind') THEN
                PERFORM pyes.apply_projection(r, v_events, %4$L)
                   FROM pyes.projections r WHERE r.name = %1$L AND r.version = %2$s;
            ELSE
                PERFORM set_config('search_path', %5$L, true);
                PERFORM %6$s;
                PERFORM set_config('search_path', 'pg_catalog, pg_temp', true);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
            PERFORM pyes.raise_inline_failure(%1$L, %2$s, v_events, v_state, v_message, v_detail);
        END;
    END IF;
$block$,
            p.name, p.version,
            CASE WHEN p.event_types IS NULL THEN 'true'
                 ELSE format('e.type = ANY (%L::text[]) OR e.type = ''$rewind''', p.event_types) END,
            p.schema_name,
            format('%I, pg_catalog, pg_temp', p.schema_name),
            -- One call per event, or one with them all for a batch handler.
            CASE WHEN pyes.handler_takes_batch(p.handler) THEN format('%s(v_events)', p.handler::oid::regproc::text)
                 ELSE format('%s(e) FROM unnest(v_events) AS e', p.handler::oid::regproc::text) END);
    END LOOP;
    RETURN v_blocks;
END;
$$;

-- The source of pyes.project_inline() for the inline projections that run now.
-- (130_append_trigger.sql redefines it: the same trigger then also checks event schemas and
-- notifies listeners.)
CREATE OR REPLACE FUNCTION pyes.inline_dispatch_source()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_blocks text := pyes.inline_projection_blocks();
BEGIN
    IF v_blocks = '' THEN
        RETURN E'\nBEGIN\n    -- No inline projection runs now.\n    RETURN NULL;\nEND;\n';
    END IF;
    RETURN E'\nDECLARE\n    v_all pyes.events[];\n    v_events pyes.events[];\n    v_state text;\n    v_message text;\n    v_detail text;\n'
        || E'BEGIN\n    v_all := pyes.upcast_for_projection(ARRAY(SELECT e::pyes.events FROM new_events AS e ORDER BY e.position));\n'
        || v_blocks || E'    RETURN NULL;\nEND;\n';
END;
$$;

-- The source pyes.project_inline() has now (NULL before it is first generated).
CREATE OR REPLACE FUNCTION pyes.inline_dispatch_current()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT f.prosrc FROM pg_catalog.pg_proc f WHERE f.oid = to_regprocedure('pyes.project_inline()'));
END;
$$;

-- (Re)generate pyes.project_inline() if the set of running inline projections changed.
CREATE OR REPLACE FUNCTION pyes.refresh_inline_dispatch()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Most registry changes (a batch moving a checkpoint) leave the source as it is: compare
    -- first, so that they take no lock.
    IF pyes.inline_dispatch_source() IS NOT DISTINCT FROM pyes.inline_dispatch_current() THEN
        RETURN;
    END IF;
    -- One regeneration at a time (two concurrent CREATE OR REPLACE would collide), each from
    -- the registry as it is once the previous one committed.
    PERFORM pg_advisory_xact_lock(hashtextextended('pyes.inline_dispatch', 0));
    IF pyes.inline_dispatch_source() IS DISTINCT FROM pyes.inline_dispatch_current() THEN
        EXECUTE format('CREATE OR REPLACE FUNCTION pyes.project_inline() RETURNS trigger LANGUAGE plpgsql VOLATILE'
                       ' SET search_path = pg_catalog, pg_temp AS %L', pyes.inline_dispatch_source());
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION pyes.projections_changed()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pyes.refresh_inline_dispatch();
    RETURN NULL;
END;
$$;

SELECT pyes.refresh_inline_dispatch();

CREATE OR REPLACE TRIGGER projections_refresh_inline
    AFTER INSERT OR UPDATE OR DELETE ON pyes.projections
    FOR EACH STATEMENT EXECUTE FUNCTION pyes.projections_changed();

CREATE OR REPLACE TRIGGER events_project_inline
    AFTER INSERT ON pyes.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION pyes.project_inline();
