-- One trigger after every appending statement, instead of three. The three jobs that ran
-- after an append (the event schema check of 124_append_schema_check.sql, the NOTIFY of
-- 045_notify.sql and the inline projections of 092_projection_inline.sql) each cost a
-- trigger call, about a tenth of a one-event append together. They now share the generated
-- trigger function pyes.project_inline() (fired by events_project_inline), whose source has
-- only the jobs that have work to do: the schema check while a schema is registered, a block
-- per running inline projection, and the notification.
--
-- Notifications go out only while a session listens through pyes.listen(): PostgreSQL
-- commits the transactions that sent a notification one at a time (a lock on the
-- notification queue, held through the commit's WAL flush), so notifying when nobody
-- listens would cost concurrent writers their shared WAL flushes for nothing. The setting
-- pyes.notify decides:
--
--     auto (or unset)   notify while pyes.listeners has a row (the default)
--     on                notify on every append (for clients that LISTEN without pyes.listen)
--     off               never notify (readers poll)
--
-- Anything else makes appends fail with PE109.

-- LISTEN on channel pyes_events and register this session, so that appends notify. Also
-- forgets sessions that ended without pyes.unlisten(). Both take effect at commit.
CREATE OR REPLACE FUNCTION pyes.listen()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LISTEN pyes_events;
    DELETE FROM pyes.listeners l
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.pid = l.pid);
    INSERT INTO pyes.listeners AS l (pid, application_name)
    VALUES (pg_backend_pid(), coalesce(current_setting('application_name', true), ''))
    ON CONFLICT (pid) DO UPDATE SET listening_since = now(), application_name = EXCLUDED.application_name;
END;
$$;

-- The opposite of pyes.listen(), for this session.
CREATE OR REPLACE FUNCTION pyes.unlisten()
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UNLISTEN pyes_events;
    DELETE FROM pyes.listeners l WHERE l.pid = pg_backend_pid();
END;
$$;

-- PE109 for a value of pyes.notify other than auto, on or off.
CREATE OR REPLACE FUNCTION pyes.raise_invalid_notify_setting(p_value text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'pyes.notify is not a valid choice: %', quote_literal(p_value)
        USING ERRCODE = 'PE109',
              DETAIL = 'The setting is ''auto'' (notify while a session listens through pyes.listen(); the default), ''on'' (every append) or ''off'' (never). Nothing was appended.',
              HINT = 'Fix it with SET pyes.notify = ''auto'', or ALTER DATABASE ... SET / RESET pyes.notify.';
END;
$$;

-- The schema check of the statement's events (p_events in insertion order): PE601/PE602 for
-- the first event that does not fit the schema of its (type, schema_version).
CREATE OR REPLACE FUNCTION pyes.check_new_events(p_events pyes.events[])
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT e.event_id, e.stream_id, e.version, e.type, e.schema_version, e.data, s.schema
               FROM unnest(p_events) WITH ORDINALITY AS e
               JOIN pyes.event_schemas s ON s.type = e.type AND s.version = e.schema_version
              ORDER BY e.ordinality LOOP
        PERFORM pyes.check_event_data(r.schema, r.data,
            format('Event %s (%s version %s, stream %L version %s)', r.event_id, r.type, r.schema_version, r.stream_id, r.version));
    END LOOP;
END;
$$;

-- The source of pyes.project_inline(): schema check, inline projections, notification.
CREATE OR REPLACE FUNCTION pyes.inline_dispatch_source()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_blocks text := pyes.inline_projection_blocks();
    v_source text := E'\nDECLARE\n    v_all pyes.events[];\n    v_events pyes.events[];\n    v_state text;\n' ||
                     E'    v_message text;\n    v_detail text;\n    v_notify text;\nBEGIN\n';
BEGIN
    IF EXISTS (SELECT 1 FROM pyes.event_schemas) THEN
        v_source := v_source || E'    -- Events of a (type, schema_version) with a registered schema must fit it.\n'
            || E'    PERFORM pyes.check_new_events(ARRAY(SELECT e::pyes.events FROM new_events AS e ORDER BY e.position));\n';
    END IF;
    IF v_blocks <> '' THEN
        v_source := v_source
            || E'    v_all := pyes.upcast_for_projection(ARRAY(SELECT e::pyes.events FROM new_events AS e ORDER BY e.position));\n'
            || v_blocks;
    END IF;
    RETURN v_source || $notify$
    -- Wake the sessions that listen (pyes.listen); the notification is delivered at commit.
    v_notify := coalesce(current_setting('pyes.notify', true), '');
    IF v_notify IN ('', 'auto') THEN
        IF EXISTS (SELECT 1 FROM pyes.listeners) THEN
            PERFORM pg_notify('pyes_events', '');
        END IF;
    ELSIF v_notify IN ('on', 'true', '1') THEN
        PERFORM pg_notify('pyes_events', '');
    ELSIF v_notify NOT IN ('off', 'false', '0') THEN
        PERFORM pyes.raise_invalid_notify_setting(v_notify);
    END IF;
    RETURN NULL;
END;
$notify$;
END;
$$;

-- Registering or removing a schema changes the trigger's source: the same regeneration as a
-- change of the projection registry (pyes.projections_changed, 092_projection_inline.sql).
CREATE OR REPLACE TRIGGER event_schemas_refresh_inline
    AFTER INSERT OR UPDATE OR DELETE ON pyes.event_schemas
    FOR EACH STATEMENT EXECUTE FUNCTION pyes.projections_changed();

-- The two triggers this one replaces, and their functions.
DROP TRIGGER IF EXISTS events_notify ON pyes.events;
DROP TRIGGER IF EXISTS events_check_schema ON pyes.events;
DROP FUNCTION IF EXISTS pyes.notify_events();
DROP FUNCTION IF EXISTS pyes.check_event_schemas();

SELECT pyes.refresh_inline_dispatch();
