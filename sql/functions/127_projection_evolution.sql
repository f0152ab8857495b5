-- Projections and schema evolution: this revision replaces the hooks of
-- 091_projection_apply.sql, so that handlers receive events in their current shape (SQL
-- upcasters applied) and a projection's type filter also reads the events stored under a
-- type's former names; and it records the schema versions each projection is built from
-- (pyes check reports one built from older versions than the current ones).

CREATE OR REPLACE FUNCTION pyes.upcast_for_projection(p_events pyes.events[])
RETURNS pyes.events[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pyes.upcast_events(p_events);
END;
$$;

-- p_types, plus every type that a chain of renames turns into one of them.
CREATE OR REPLACE FUNCTION pyes.projection_type_names(p_types text[])
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_types IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN ARRAY(
        WITH RECURSIVE names(type) AS (
            SELECT unnest(p_types)
            UNION
            SELECT u.type FROM pyes.event_upcasters u JOIN names n ON u.to_type = n.type
        )
        SELECT type FROM names ORDER BY type);
END;
$$;

-- Registered, or reset for a rebuild (checkpoint back at the start after having moved or
-- caught up): record the versions it is (re)built from.
CREATE OR REPLACE FUNCTION pyes.tag_projection_schema_versions()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pyes.record_projection_schema_versions(NEW.name, NEW.version);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER projections_tag_registered
    AFTER INSERT ON pyes.projections
    FOR EACH ROW EXECUTE FUNCTION pyes.tag_projection_schema_versions();

CREATE OR REPLACE TRIGGER projections_tag_reset
    AFTER UPDATE ON pyes.projections
    FOR EACH ROW
    WHEN (NEW.checkpoint_position = 0 AND NEW.events_processed = 0 AND NEW.caught_up_at IS NULL
          AND (OLD.checkpoint_position <> 0 OR OLD.events_processed <> 0 OR OLD.caught_up_at IS NOT NULL))
    EXECUTE FUNCTION pyes.tag_projection_schema_versions();
