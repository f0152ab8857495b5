-- The current schema version of each event type.
--
-- current_version(T) = the highest of
--   * the versions of T registered in pyes.event_schemas, and
--   * from_version + 1 of every upcaster whose result is T (a step within T, or a rename to T).
-- A type with neither has no current version (NULL): its events are read as stored.
-- pyes.event_type_versions keeps it per type, refreshed by a trigger whenever either table
-- changes, so that the read functions need one index probe per row to know whether a row
-- needs pyes.upcast.

CREATE OR REPLACE FUNCTION pyes.refresh_event_type_versions()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Registrations are rare: serialise them, so that two of them never derive the table at once.
    PERFORM pg_advisory_xact_lock(pg_catalog.hashtext('pyes.event_type_versions'));
    DELETE FROM pyes.event_type_versions;
    INSERT INTO pyes.event_type_versions (type, current_version, upcast_below)
    SELECT c.type, coalesce(max(c.current_version), 0), greatest(coalesce(max(c.current_version), 0), max(c.upcast_below))
      FROM (SELECT s.type, s.version AS current_version, NULL::integer AS upcast_below FROM pyes.event_schemas s
            UNION ALL
            SELECT coalesce(u.to_type, u.type), u.from_version + 1, NULL FROM pyes.event_upcasters u
            UNION ALL
            SELECT u.type, NULL, u.from_version + 1 FROM pyes.event_upcasters u) c
     GROUP BY c.type;
    -- A type that is only renamed away (no schema, no step into it) has no current version of
    -- its own (0 here); its rows still go through pyes.upcast below upcast_below.
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER event_schemas_versions
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pyes.event_schemas
    FOR EACH STATEMENT EXECUTE FUNCTION pyes.refresh_event_type_versions();

CREATE OR REPLACE TRIGGER event_upcasters_versions
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pyes.event_upcasters
    FOR EACH STATEMENT EXECUTE FUNCTION pyes.refresh_event_type_versions();

-- The current schema version of a type (NULL: nothing registered for it).
CREATE OR REPLACE FUNCTION pyes.current_schema_version(p_type text)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT v.current_version FROM pyes.event_type_versions v WHERE v.type = p_type AND v.current_version > 0);
END;
$$;

-- {"type": current version, ...} for the given types (NULL: every type with one); types with
-- no current version are left out. What a projection records as built_with.
CREATE OR REPLACE FUNCTION pyes.current_schema_versions(p_types text[] DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce((SELECT jsonb_object_agg(v.type, v.current_version ORDER BY v.type)
                       FROM pyes.event_type_versions v
                      WHERE v.current_version > 0 AND (p_types IS NULL OR v.type = ANY (p_types))), '{}');
END;
$$;

-- Record that projection (p_name, p_version) is built from the current schema versions of its
-- event types (all types when it has no type filter). Called when a projection is registered
-- and when it is reset for a rebuild; returns what it recorded.
CREATE OR REPLACE FUNCTION pyes.record_projection_schema_versions(p_name text, p_version integer)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_types text[];
    v_built jsonb;
BEGIN
    SELECT p.event_types INTO v_types FROM pyes.projections p WHERE p.name = p_name AND p.version = p_version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no projection % version %', coalesce(quote_literal(p_name), 'NULL'), coalesce(p_version::text, 'NULL')
            USING ERRCODE = 'PE302',
                  DETAIL = 'pyes.record_projection_schema_versions needs a registered projection.',
                  HINT = 'SELECT name, version FROM pyes.projection_status() lists them.';
    END IF;
    v_built := pyes.current_schema_versions(v_types);
    INSERT INTO pyes.projection_schema_versions AS b (name, version, built_with) VALUES (p_name, p_version, v_built)
    ON CONFLICT (name, version) DO UPDATE SET built_with = excluded.built_with, recorded_at = now();
    RETURN v_built;
END;
$$;
