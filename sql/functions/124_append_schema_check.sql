-- Revision 0006 installs this trigger; revision 0007 (130_append_trigger.sql) drops it and runs
-- the same check (pyes.check_new_events) from the one trigger after appends.
-- The append check: events of a (type, schema_version) that has a registered schema must fit
-- it. One trigger call per appending statement (a transition table holds its events); with no
-- schema registered it returns at once. A violation raises PE601 (a required field is
-- missing) or PE602 (a field has another JSON type), naming the event and the field; the
-- statement fails, so nothing is written. Events of versions without a schema are not checked.
-- The trigger's name sorts before events_notify and events_project_inline, so it runs first.

CREATE OR REPLACE FUNCTION pyes.check_event_schemas()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pyes.event_schemas) THEN
        RETURN NULL;
    END IF;
    FOR r IN SELECT e.event_id, e.stream_id, e.version, e.type, e.schema_version, e.data, s.schema
               FROM new_events e JOIN pyes.event_schemas s ON s.type = e.type AND s.version = e.schema_version
              ORDER BY e.position LOOP
        PERFORM pyes.check_event_data(r.schema, r.data,
            format('Event %s (%s version %s, stream %L version %s)', r.event_id, r.type, r.schema_version, r.stream_id, r.version));
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER events_check_schema
    AFTER INSERT ON pyes.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION pyes.check_event_schemas();
