-- The projection registry: register, unregister, pause, resume. Changes of an inline
-- projection's state are made while holding a SHARE lock on pyes.events (see
-- pyes.lock_appends): it waits for appending transactions in flight and holds new ones back
-- for the moment of the change, so that every append applies the projection inline or
-- leaves the event to its catch-up, never both and never neither.

-- The registry row, locked for the caller's transaction; PE302 if there is none.
-- p_version NULL means the current version.
CREATE OR REPLACE FUNCTION pyes.projection_row(p_name text, p_version integer, p_nowait boolean DEFAULT false)
RETURNS pyes.projections
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v pyes.projections;
BEGIN
    IF p_nowait THEN
        BEGIN
            SELECT * INTO v FROM pyes.projections p
             WHERE p.name = p_name AND (p.version = p_version OR (p_version IS NULL AND p.is_current))
               FOR UPDATE NOWAIT;
        EXCEPTION WHEN lock_not_available THEN
            RAISE EXCEPTION 'projection % is busy', quote_literal(p_name)
                USING ERRCODE = 'PE305',
                      DETAIL = format('Another session is processing projection %L version %s right now (a worker or a rebuild).',
                                      p_name, coalesce(p_version::text, 'current')),
                      HINT = 'Wait for it to finish, or stop the other worker (pyes projections status shows what runs).';
        END;
    ELSE
        SELECT * INTO v FROM pyes.projections p
         WHERE p.name = p_name AND (p.version = p_version OR (p_version IS NULL AND p.is_current))
           FOR UPDATE;
    END IF;
    IF v.name IS NULL THEN
        RAISE EXCEPTION 'projection % not found', quote_literal(p_name)
            USING ERRCODE = 'PE302',
                  DETAIL = format('No projection named %L%s is registered.', p_name,
                                  CASE WHEN p_version IS NULL THEN '' ELSE format(' with version %s', p_version) END),
                  HINT = 'pyes.projection_status() lists the registered projections.';
    END IF;
    RETURN v;
END;
$$;

-- Hold appends back for a moment: a SHARE lock on pyes.events waits for every transaction
-- that has appended and not yet committed, and makes new appends wait until the caller's
-- transaction ends. Gives up after p_timeout (PE305) rather than queueing every writer
-- behind a long transaction.
CREATE OR REPLACE FUNCTION pyes.lock_appends(p_timeout interval DEFAULT '5 seconds')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_previous text := current_setting('lock_timeout');
BEGIN
    IF p_timeout IS NULL OR p_timeout < '1 millisecond'::interval THEN
        PERFORM pyes.invalid_projection_argument('pyes.lock_appends', 'p_timeout', p_timeout::text, 'a positive interval');
    END IF;
    PERFORM set_config('lock_timeout', (extract(epoch FROM p_timeout) * 1000)::bigint::text, true);
    BEGIN
        LOCK TABLE pyes.events IN SHARE MODE;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'appends did not pause within %', p_timeout
            USING ERRCODE = 'PE305',
                  DETAIL = 'Changing how an inline projection runs needs a moment with no append in flight, and a transaction that appended has stayed open longer than that.',
                  HINT = 'pg_stat_activity shows the open transactions; try again when they have committed.';
    END;
    PERFORM set_config('lock_timeout', v_previous, true);
END;
$$;

CREATE OR REPLACE FUNCTION pyes.invalid_projection(p_name text, p_detail text, p_hint text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'invalid projection %', coalesce(quote_literal(p_name), 'NULL')
        USING ERRCODE = 'PE304', DETAIL = p_detail,
              HINT = coalesce(p_hint, 'See docs/projections.md for what pyes.register_projection expects.');
END;
$$;

-- PE109 for a projection function's argument that is NULL or out of range.
CREATE OR REPLACE FUNCTION pyes.invalid_projection_argument(p_function text, p_argument text, p_value text, p_expected text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'invalid % for %', p_argument, p_function
        USING ERRCODE = 'PE109',
              DETAIL = format('%s got %s for %s; it takes %s.', p_function, coalesce(p_value, 'NULL'), p_argument, p_expected),
              HINT = 'See docs/projections.md#function-reference.';
END;
$$;

-- Whether a handler is a batch handler: it takes (pyes.events[]), all the events of a batch
-- (or of an appending statement) in order in one call, instead of (pyes.events), one call
-- per event. A set-based handler (one INSERT ... SELECT ... FROM unnest(events) ... ON
-- CONFLICT) then writes its table in one statement per batch.
CREATE OR REPLACE FUNCTION pyes.handler_takes_batch(p_handler regprocedure)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce((SELECT f.pronargs = 1 AND f.proargtypes[0] = 'pyes.events[]'::regtype::oid
                       FROM pg_catalog.pg_proc f WHERE f.oid = p_handler), false);
END;
$$;

-- Checks a handler's signature: p_args are the argument types it must take.
CREATE OR REPLACE FUNCTION pyes.check_projection_handler(p_name text, p_handler regprocedure, p_args oid[], p_what text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_args oid[];
BEGIN
    v_args := ARRAY(SELECT t FROM pg_catalog.pg_proc p, unnest(p.proargtypes) WITH ORDINALITY u(t, n) WHERE p.oid = p_handler ORDER BY u.n);
    IF v_args IS DISTINCT FROM p_args THEN
        PERFORM pyes.invalid_projection(p_name,
            format('The %s %s must take exactly (%s)%s.', p_what, p_handler,
                   (SELECT string_agg(format_type(t, NULL), ', ') FROM unnest(p_args) t),
                   CASE WHEN p_what = 'handler' THEN ', or (pyes.events[]) for a batch handler' ELSE '' END),
            'Declare it as CREATE FUNCTION ... (e pyes.events) RETURNS void, or (events pyes.events[]) for a batch, writing the projection''s tables.');
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION pyes.validate_projection(
    p_name text, p_version integer, p_mode text, p_handler regprocedure, p_rewind_handler regprocedure,
    p_event_types text[], p_schema text, p_tables text[], p_views text[], p_stream_column text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_table text;
BEGIN
    IF p_name IS NULL OR btrim(p_name) = '' OR length(p_name) > 200 OR p_name ~ '[[:cntrl:]]' THEN
        PERFORM pyes.invalid_projection(p_name, 'A projection name is 1 to 200 printable characters.');
    END IF;
    IF p_version IS NULL OR p_version < 1 THEN
        PERFORM pyes.invalid_projection(p_name, format('The version must be 1 or more, not %s.', coalesce(p_version::text, 'NULL')));
    END IF;
    IF p_mode IS NULL OR p_mode NOT IN ('inline', 'async') THEN
        PERFORM pyes.invalid_projection(p_name, format('Unknown mode %s: a projection is ''inline'' or ''async''.', coalesce(quote_literal(p_mode), 'NULL')));
    END IF;
    IF p_handler IS NULL AND p_mode = 'inline' THEN
        PERFORM pyes.invalid_projection(p_name, 'An inline projection needs an SQL handler; only asynchronous projections can be run by Python code.');
    END IF;
    IF p_handler IS NOT NULL AND NOT pyes.handler_takes_batch(p_handler) THEN
        PERFORM pyes.check_projection_handler(p_name, p_handler, ARRAY['pyes.events'::regtype::oid], 'handler');
    END IF;
    IF p_rewind_handler IS NOT NULL THEN
        PERFORM pyes.check_projection_handler(p_name, p_rewind_handler,
                                              ARRAY['pyes.events'::regtype::oid, 'pyes.events[]'::regtype::oid], 'rewind handler');
    END IF;
    IF p_event_types IS NOT NULL AND (cardinality(p_event_types) = 0
            OR EXISTS (SELECT 1 FROM unnest(p_event_types) t WHERE t IS NULL OR btrim(t) = '')) THEN
        PERFORM pyes.invalid_projection(p_name, format('The event types %s are empty or hold an empty name.', p_event_types),
                                        'Pass NULL for every type, or the types the handler reads.');
    END IF;
    IF p_schema IS NULL OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = p_schema) THEN
        PERFORM pyes.invalid_projection(p_name, format('Schema %s does not exist.', coalesce(quote_literal(p_schema), 'NULL')));
    END IF;
    IF p_tables IS NULL OR array_position(p_tables, NULL) IS NOT NULL THEN
        PERFORM pyes.invalid_projection(p_name, 'The tables are an array of table names (empty if the projection owns none).');
    END IF;
    FOREACH v_table IN ARRAY p_tables LOOP
        IF to_regclass(format('%I.%I', p_schema, v_table)) IS NULL THEN
            PERFORM pyes.invalid_projection(p_name, format('Table %I.%I does not exist.', p_schema, v_table),
                                            'Create the projection''s tables before registering it; name them without their schema.');
        END IF;
        IF p_stream_column IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = to_regclass(format('%I.%I', p_schema, v_table))
                   AND a.attname = p_stream_column AND a.attnum > 0 AND NOT a.attisdropped) THEN
            PERFORM pyes.invalid_projection(p_name, format('Table %I.%I has no column %I to key its rows by stream.', p_schema, v_table, p_stream_column),
                                            'Every table of a projection keyed by stream holds the stream id in that column.');
        END IF;
    END LOOP;
    IF p_stream_column IS NOT NULL AND cardinality(p_tables) = 0 THEN
        PERFORM pyes.invalid_projection(p_name, 'A projection keyed by stream needs the tables whose rows it keys.');
    END IF;
    IF p_views IS NOT NULL AND (cardinality(p_views) <> cardinality(p_tables) OR array_position(p_views, NULL) IS NOT NULL) THEN
        PERFORM pyes.invalid_projection(p_name, format('%s views for %s tables: give one view name per table, in the same order.',
                                                       cardinality(p_views), cardinality(p_tables)));
    END IF;
END;
$$;

-- Register a projection. The first version of a name becomes current; a later version is
-- built beside it (its own tables) until pyes.switch_projection makes it current. An inline
-- projection starts 'catching_up': pyes.run_projection builds it from history, then turns
-- it inline. Returns the registry row.
CREATE OR REPLACE FUNCTION pyes.register_projection(
    p_name text,
    p_handler regprocedure,
    p_event_types text[] DEFAULT NULL,
    p_mode text DEFAULT 'async',
    p_tables text[] DEFAULT '{}',
    p_schema text DEFAULT 'public',
    p_version integer DEFAULT 1,
    p_stream_column text DEFAULT NULL,
    p_rewind_handler regprocedure DEFAULT NULL,
    p_views text[] DEFAULT NULL)
RETURNS pyes.projections
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v pyes.projections;
BEGIN
    PERFORM pyes.validate_projection(p_name, p_version, p_mode, p_handler, p_rewind_handler,
                                     p_event_types, p_schema, p_tables, p_views, p_stream_column);
    -- Serialise registrations of one name (two sessions racing for "the first version").
    PERFORM pg_advisory_xact_lock(hashtextextended('pyes.projection:' || p_name, 0));
    IF EXISTS (SELECT 1 FROM pyes.projections p WHERE p.name = p_name AND p.version = p_version) THEN
        RAISE EXCEPTION 'projection % version % is already registered', quote_literal(p_name), p_version
            USING ERRCODE = 'PE303',
                  DETAIL = format('Projection %L already has a version %s.', p_name, p_version),
                  HINT = 'Register a new version to change it (built beside the current one), or pyes.unregister_projection first.';
    END IF;
    INSERT INTO pyes.projections AS p (name, version, mode, handler, rewind_handler, event_types, schema_name,
                                       tables, views, stream_column, state, is_current)
    VALUES (p_name, p_version, p_mode, p_handler, p_rewind_handler, p_event_types, p_schema, p_tables,
            p_views, p_stream_column, CASE p_mode WHEN 'inline' THEN 'catching_up' ELSE 'running' END,
            NOT EXISTS (SELECT 1 FROM pyes.projections o WHERE o.name = p_name AND o.is_current))
    RETURNING * INTO v;
    IF v.is_current AND p_views IS NOT NULL THEN
        PERFORM pyes.point_views(v);
    END IF;
    RETURN v;
END;
$$;

-- Remove a projection (one version, or every version when p_version is NULL). Its tables
-- stay unless p_drop_tables. The current version cannot go while others remain (PE307).
CREATE OR REPLACE FUNCTION pyes.unregister_projection(p_name text, p_version integer DEFAULT NULL, p_drop_tables boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v pyes.projections;
    v_count integer := 0;
    v_table text;
BEGIN
    PERFORM pyes.projection_row(p_name, p_version);  -- PE302 if unknown
    IF p_version IS NOT NULL AND EXISTS (
            SELECT 1 FROM pyes.projections p WHERE p.name = p_name AND p.version = p_version AND p.is_current)
       AND EXISTS (SELECT 1 FROM pyes.projections p WHERE p.name = p_name AND p.version <> p_version) THEN
        RAISE EXCEPTION 'projection % version % is current', quote_literal(p_name), p_version
            USING ERRCODE = 'PE307',
                  DETAIL = format('Queries read projection %L through version %s, and other versions exist.', p_name, p_version),
                  HINT = 'Switch to another version first (pyes.switch_projection), then drop this one.';
    END IF;
    IF EXISTS (SELECT 1 FROM pyes.projections p
                WHERE p.name = p_name AND (p_version IS NULL OR p.version = p_version) AND p.mode = 'inline') THEN
        PERFORM pyes.lock_appends();
    END IF;
    FOR v IN DELETE FROM pyes.projections p WHERE p.name = p_name AND (p_version IS NULL OR p.version = p_version) RETURNING * LOOP
        v_count := v_count + 1;
        IF p_drop_tables THEN
            FOREACH v_table IN ARRAY v.tables LOOP
                EXECUTE format('DROP TABLE IF EXISTS %I.%I CASCADE', v.schema_name, v_table);
            END LOOP;
        END IF;
    END LOOP;
    RETURN v_count;
END;
$$;

-- Stop applying a projection. An inline projection's checkpoint is set to the last event
-- it applied, so that resuming catches up from exactly there.
CREATE OR REPLACE FUNCTION pyes.pause_projection(p_name text, p_version integer DEFAULT NULL)
RETURNS pyes.projections
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v pyes.projections := pyes.projection_row(p_name, p_version);
    v_last record;
BEGIN
    IF v.mode = 'inline' AND v.state = 'running' THEN
        PERFORM pyes.lock_appends();
        -- With appends paused, every stored event is committed and was applied inline.
        SELECT e.transaction_id, e.position INTO v_last FROM pyes.events e
         ORDER BY e.transaction_id DESC, e.position DESC LIMIT 1;
        UPDATE pyes.projections p
           SET checkpoint_xid = coalesce(v_last.transaction_id, p.checkpoint_xid),
               checkpoint_position = coalesce(v_last.position, p.checkpoint_position)
         WHERE p.name = v.name AND p.version = v.version;
    END IF;
    UPDATE pyes.projections p SET state = 'paused', updated_at = now()
     WHERE p.name = v.name AND p.version = v.version RETURNING * INTO v;
    RETURN v;
END;
$$;

-- Resume a paused or failed projection: it goes on from its checkpoint (a failed one
-- retries the event that failed). An inline projection catches up first.
CREATE OR REPLACE FUNCTION pyes.resume_projection(p_name text, p_version integer DEFAULT NULL)
RETURNS pyes.projections
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v pyes.projections := pyes.projection_row(p_name, p_version);
BEGIN
    IF v.state IN ('paused', 'failed') THEN
        UPDATE pyes.projections p
           SET state = CASE p.mode WHEN 'inline' THEN 'catching_up' ELSE 'running' END,
               last_error = NULL, last_error_sqlstate = NULL, failed_event_id = NULL, updated_at = now()
         WHERE p.name = v.name AND p.version = v.version RETURNING * INTO v;
    END IF;
    RETURN v;
END;
$$;
