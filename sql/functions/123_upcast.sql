-- Upcasting: events of an older schema version, read in the current shape.
--
-- pyes.upcast follows the steps of pyes.event_upcasters from (type, version): each step runs
-- its function (if any) on the data, renames the type (if it says so) and adds 1 to the
-- version. It stops when
--   * there is no step from the version reached, and that version is the type's current one
--     (or above it, or the type has none): done;
--   * there is no step, but the type's current version is higher: PE605, naming the type and
--     the two versions (a missing step is never skipped silently);
--   * the next step is a 'python' one: the Python client runs the rest (pyes.typed).
-- Versions only go up, so a chain always ends.

CREATE OR REPLACE FUNCTION pyes.upcast(
    p_type text,
    p_schema_version integer,
    p_data jsonb,
    OUT type text,
    OUT schema_version integer,
    OUT data jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step pyes.event_upcasters;
    v_current integer;
BEGIN
    type := p_type;
    schema_version := p_schema_version;
    data := p_data;
    LOOP
        SELECT * INTO v_step FROM pyes.event_upcasters u WHERE u.type = upcast.type AND u.from_version = upcast.schema_version;
        IF NOT FOUND THEN
            SELECT v.current_version INTO v_current FROM pyes.event_type_versions v WHERE v.type = upcast.type;
            IF schema_version < v_current THEN
                RAISE EXCEPTION 'no upcaster of % from version % to %', quote_literal(upcast.type), schema_version, schema_version + 1
                    USING ERRCODE = 'PE605',
                          DETAIL = format('Events of %L version %s cannot be read as the current version %s: no upcaster from version %s to %s is registered%s.',
                                          upcast.type, schema_version, v_current, schema_version, schema_version + 1,
                                          CASE WHEN upcast.type <> p_type OR schema_version <> p_schema_version
                                               THEN format(' (the event was stored as %L version %s)', p_type, p_schema_version) ELSE '' END),
                          HINT = format('Register the step: SELECT pyes.register_upcaster(%L, %s, ''<schema>.<function>(jsonb)''::regprocedure). pyes check lists every missing step.',
                                        upcast.type, schema_version);
            END IF;
            RETURN;
        END IF;
        IF v_step.language = 'python' THEN
            RETURN;
        END IF;
        IF v_step.function IS NOT NULL THEN
            EXECUTE 'SELECT ' || v_step.function::oid::regproc::text || '($1)' INTO data USING data;
            IF jsonb_typeof(data) IS DISTINCT FROM 'object' THEN
                RAISE EXCEPTION 'upcaster % returned %', v_step.function, coalesce(jsonb_typeof(data), 'NULL')
                    USING ERRCODE = 'PE606',
                          DETAIL = format('The upcaster %s of %L from version %s returned %s instead of a JSON object (for data %s).',
                                          v_step.function, v_step.type, v_step.from_version, coalesce(left(data::text, 80), 'NULL'),
                                          left(p_data::text, 200)),
                          HINT = 'An upcaster returns the whole data object of the next version; fix the function (CREATE OR REPLACE FUNCTION).';
            END IF;
        END IF;
        type := coalesce(v_step.to_type, v_step.type);
        schema_version := schema_version + 1;
    END LOOP;
END;
$$;

-- An event row in its current shape (type, schema_version and data upcast; the other columns
-- as stored). For projection handlers, which take pyes.events rows. Costs one index probe
-- when the row needs no upcasting.
CREATE OR REPLACE FUNCTION pyes.upcast_event(p_event pyes.events)
RETURNS pyes.events
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text;
    v_version integer;
    v_data jsonb;
BEGIN
    IF p_event IS NULL OR NOT EXISTS (SELECT 1 FROM pyes.event_type_versions v
                                       WHERE v.type = p_event.type AND p_event.schema_version < v.upcast_below) THEN
        RETURN p_event;
    END IF;
    SELECT u.type, u.schema_version, u.data INTO v_type, v_version, v_data
      FROM pyes.upcast(p_event.type, p_event.schema_version, p_event.data) u;
    p_event.type := v_type;
    p_event.schema_version := v_version;
    p_event.data := v_data;
    RETURN p_event;
END;
$$;

-- pyes.upcast_event over an array, in order; the array itself when nothing is registered.
CREATE OR REPLACE FUNCTION pyes.upcast_events(p_events pyes.events[])
RETURNS pyes.events[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_events IS NULL OR cardinality(p_events) = 0 OR NOT EXISTS (SELECT 1 FROM pyes.event_type_versions) THEN
        RETURN p_events;
    END IF;
    RETURN ARRAY(SELECT pyes.upcast_event(p_events[i]) FROM generate_subscripts(p_events, 1) i ORDER BY i);
END;
$$;
