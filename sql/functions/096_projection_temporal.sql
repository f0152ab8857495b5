-- Temporal projections: build a projection as of a past moment into a schema of its own,
-- from the events recorded up to then, with the projection's own handler. "All users who
-- were active last Tuesday at 15:00" is one call, then one query:
--
--     SELECT pyes.project_as_of('active_users', '2026-11-17 15:00+00', 'users_tuesday');
--     SELECT * FROM users_tuesday.active_users;
--
-- The handler writes its tables by unqualified name: pyes runs it with search_path set to
-- the target schema, which holds empty copies of the projection's tables.

CREATE OR REPLACE FUNCTION pyes.project_as_of(
    p_name text,
    p_at timestamptz,
    p_into_schema text,
    p_version integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p pyes.projections;
    v_table text;
    v_events pyes.events[];
    v_after record;
    v_count bigint := 0;
    v_n integer;
    v_types text[];
BEGIN
    SELECT * INTO p FROM pyes.projections r
     WHERE r.name = p_name AND (r.version = p_version OR (p_version IS NULL AND r.is_current));
    IF p.name IS NULL THEN
        PERFORM pyes.projection_row(p_name, p_version);  -- raises PE302
    END IF;
    IF p.handler IS NULL THEN
        PERFORM pyes.invalid_projection(p_name, format('Projection %L is run by Python code: build it as of a time from Python.', p_name));
    END IF;
    IF p_at IS NULL THEN
        RAISE EXCEPTION 'a temporal projection needs a time'
            USING ERRCODE = 'PE308', DETAIL = 'pyes.project_as_of got NULL for p_at.',
                  HINT = 'Pass the moment to build the projection as of, such as ''2026-11-17 15:00+00''.';
    END IF;
    IF p_into_schema IS NULL OR btrim(p_into_schema) = '' OR length(p_into_schema) > 63
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = p_into_schema) THEN
        RAISE EXCEPTION 'invalid target schema % for a temporal projection', coalesce(quote_literal(p_into_schema), 'NULL')
            USING ERRCODE = 'PE308',
                  DETAIL = format('The target must be a new schema name of 1 to 63 characters; %s.',
                                  CASE WHEN p_into_schema IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = p_into_schema)
                                       THEN format('schema %I exists already', p_into_schema) ELSE 'this one is not' END),
                  HINT = 'Pick a fresh name, or DROP SCHEMA ... CASCADE the previous build.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_proc f WHERE f.oid = p.handler
                AND EXISTS (SELECT 1 FROM unnest(f.proconfig) c WHERE c LIKE 'search\_path=%')) THEN
        RAISE EXCEPTION 'projection % cannot be built into another schema', quote_literal(p_name)
            USING ERRCODE = 'PE308',
                  DETAIL = format('Its handler %s pins its own search_path, so it would write the live tables.', p.handler),
                  HINT = 'Let the handler name its tables without a schema and drop its SET search_path: pyes sets the path when it calls it.';
    END IF;
    EXECUTE format('CREATE SCHEMA %I', p_into_schema);
    FOREACH v_table IN ARRAY p.tables LOOP
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)',
                       p_into_schema, v_table, p.schema_name, v_table);
    END LOOP;
    v_types := pyes.projection_type_names(p.event_types);  -- once, not per row
    -- Every event recorded up to p_at, in the global order; from the start of history.
    p.checkpoint_xid := '0';
    p.checkpoint_position := 0;
    LOOP
        v_events := pyes.upcast_for_projection(ARRAY(
            SELECT e FROM pyes.events e
             WHERE (e.transaction_id, e.position) > (p.checkpoint_xid, p.checkpoint_position)
               AND e.recorded_at <= p_at
               AND (v_types IS NULL OR e.type = ANY (v_types) OR e.type = '$rewind')
             ORDER BY e.transaction_id, e.position
             LIMIT 10000));
        v_n := cardinality(v_events);
        EXIT WHEN v_n = 0;
        PERFORM pyes.apply_projection(p, v_events, p_into_schema, true);
        v_count := v_count + v_n;
        p.checkpoint_xid := (v_events[v_n]).transaction_id;  -- upcasting keeps the position columns
        p.checkpoint_position := (v_events[v_n]).position;
    END LOOP;
    RETURN v_count;
END;
$$;
