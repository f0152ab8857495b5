-- Drift: what pyes check reports from the database alone (the Python side adds what the code
-- declares). Every client can run it: SELECT * FROM pyes.schema_drift().

-- Why events of (p_type, p_version) cannot reach their current shape, or NULL when they can.
-- Follows the registered steps without running them; 'python' steps count as present (the
-- Python check verifies that the code has them).
CREATE OR REPLACE FUNCTION pyes.upcast_path_problem(p_type text, p_version integer)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text := p_type;
    v_version integer := p_version;
    v_step pyes.event_upcasters;
    v_current integer;
    v_python_at text;
BEGIN
    LOOP
        SELECT * INTO v_step FROM pyes.event_upcasters u WHERE u.type = v_type AND u.from_version = v_version;
        EXIT WHEN NOT FOUND;
        IF v_step.language = 'python' THEN
            v_python_at := coalesce(v_python_at, format('%s v%s', v_type, v_version));
        ELSIF v_step.function IS NOT NULL AND v_python_at IS NOT NULL THEN
            RETURN format('the SQL upcaster %s (%s v%s -> v%s) comes after the Python step from %s: SQL readers stop at the Python step and Python clients cannot run SQL upcasters',
                          v_step.function, v_type, v_version, v_version + 1, v_python_at);
        END IF;
        v_type := coalesce(v_step.to_type, v_type);
        v_version := v_version + 1;
    END LOOP;
    v_current := pyes.current_schema_version(v_type);
    IF v_current IS NULL THEN
        RETURN NULL;
    ELSIF v_version < v_current THEN
        RETURN format('no upcaster from %s v%s to v%s (the current version is %s)%s', v_type, v_version, v_version + 1, v_current,
                      CASE WHEN v_type <> p_type OR v_version <> p_version THEN format(', reached from %s v%s', p_type, p_version) ELSE '' END);
    ELSIF v_version > v_current THEN
        RETURN format('%s v%s is newer than the current version %s: no schema or upcaster knows it', v_type, v_version, v_current);
    END IF;
    RETURN NULL;
END;
$$;

-- One row per problem:
--   no_upcast_path     events stored at a (type, version) that cannot reach the current one
--                      (subject: "Type vN"; detail: why, and how many events);
--   renamed_type       a projection's type filter names a type that an upcaster renames:
--                      its events reach the projection under the new name;
--   projection_stale   a projection was built from older schema versions than the current
--                      ones (pyes.projection_schema_versions; a type missing there counts as v1):
--                      rebuild it (pyes.reset_projection).
-- Stored pairs are found with one scan of pyes.events (SELECT DISTINCT type, schema_version).
CREATE OR REPLACE FUNCTION pyes.schema_drift()
RETURNS TABLE (problem text, subject text, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    v_why text;
BEGIN
    FOR r IN SELECT e.type, e.schema_version, count(*) AS events FROM pyes.events e
              GROUP BY e.type, e.schema_version ORDER BY e.type, e.schema_version LOOP
        v_why := pyes.upcast_path_problem(r.type, r.schema_version);
        IF v_why IS NOT NULL THEN
            problem := 'no_upcast_path';
            subject := format('%s v%s', r.type, r.schema_version);
            detail := format('%s; %s stored event%s', v_why, r.events, CASE WHEN r.events = 1 THEN '' ELSE 's' END);
            RETURN NEXT;
        END IF;
    END LOOP;
    FOR r IN SELECT p.name, p.version, t.type, u.from_version, u.to_type
               FROM pyes.projections p, unnest(p.event_types) t(type), pyes.event_upcasters u
              WHERE u.type = t.type AND u.to_type IS NOT NULL
                AND NOT (u.to_type = ANY (p.event_types))
              ORDER BY p.name, p.version, t.type LOOP
        problem := 'renamed_type';
        subject := format('projection %s v%s', r.name, r.version);
        detail := format('it handles %s, which is renamed to %s from version %s: those events reach it as %s, which its type filter leaves out',
                         r.type, r.to_type, r.from_version, r.to_type);
        RETURN NEXT;
    END LOOP;
    FOR r IN SELECT p.name, p.version, b.built_with,
                    string_agg(format('%s v%s (now v%s)', c.key, coalesce(b.built_with ->> c.key, '1'), c.value), ', ' ORDER BY c.key) AS older
               FROM pyes.projections p
               LEFT JOIN pyes.projection_schema_versions b ON b.name = p.name AND b.version = p.version
               CROSS JOIN LATERAL jsonb_each_text(pyes.current_schema_versions(p.event_types)) c
              WHERE coalesce((b.built_with ->> c.key)::integer, 1) < c.value::integer
              GROUP BY p.name, p.version, b.built_with
              ORDER BY p.name, p.version LOOP
        problem := 'projection_stale';
        subject := format('projection %s v%s', r.name, r.version);
        detail := format('built from %s%s: rebuild it (pyes projections rebuild, or pyes.reset_projection)', r.older,
                         CASE WHEN r.built_with IS NULL THEN ' (it records no versions: assumed v1)' ELSE '' END);
        RETURN NEXT;
    END LOOP;
END;
$$;
