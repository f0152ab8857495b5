-- Inline projections: applied by a trigger in the appending transaction, so the read model
-- is never behind the events. One call per appending statement (a transition table holds
-- the statement's events), one handler call per projection for the whole batch. A handler
-- error aborts the append with PE301, naming the projection, the event and the error.

CREATE OR REPLACE FUNCTION pyes.project_inline()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p pyes.projections;
    v_events pyes.events[];
    v_failed pyes.events;
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    FOR p IN SELECT * FROM pyes.projections r WHERE r.mode = 'inline' AND r.state = 'running'
              ORDER BY r.name, r.version LOOP
        v_events := ARRAY(SELECT e::pyes.events FROM new_events e
                           WHERE p.event_types IS NULL OR e.type = ANY (p.event_types) OR e.type = '$rewind'
                           ORDER BY e.position);
        CONTINUE WHEN cardinality(v_events) = 0;
        BEGIN
            PERFORM pyes.apply_projection(p, v_events, p.schema_name);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
            v_failed := CASE WHEN cardinality(v_events) = 1 THEN v_events[1] ELSE pyes.failing_event(p, v_events, p.schema_name) END;
            RAISE EXCEPTION 'inline projection % failed: %', quote_literal(p.name), v_message
                USING ERRCODE = 'PE301',
                      DETAIL = format('Projection %L version %s (handler %s) failed on event %s (%s, stream %L version %s) with SQLSTATE %s: %s%s. Nothing was appended.',
                                      p.name, p.version, p.handler, coalesce(v_failed.event_id::text, '?'), coalesce(v_failed.type, '?'),
                                      v_failed.stream_id, coalesce(v_failed.version::text, '?'), v_state, v_message,
                                      CASE WHEN coalesce(v_detail, '') = '' THEN '' ELSE ' (' || v_detail || ')' END),
                      HINT = 'Fix the handler (CREATE OR REPLACE FUNCTION) and append again, or pause the projection (pyes.pause_projection) to let appends through meanwhile.';
        END;
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER events_project_inline
    AFTER INSERT ON pyes.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION pyes.project_inline();
