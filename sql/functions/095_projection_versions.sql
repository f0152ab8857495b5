-- Rebuilds and blue/green versions. A rebuild empties the projection's tables and replays
-- history from the start. A new version is registered with tables of its own and built
-- beside the current one; pyes.switch_projection makes it current (the views that queries
-- read are pointed at its tables in one transaction), and the old one can then be dropped.

-- Start a rebuild: empty the tables, checkpoint back to the start. pyes.run_projection (or
-- `pyes projections rebuild`, with a progress bar) then replays history.
CREATE OR REPLACE FUNCTION pyes.reset_projection(p_name text, p_version integer DEFAULT NULL)
RETURNS pyes.projections
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v pyes.projections := pyes.projection_row(p_name, p_version, true);
    v_table text;
    v_previous text;
BEGIN
    IF v.mode = 'inline' AND v.state = 'running' THEN
        -- No append may apply it inline between the TRUNCATE and this commit.
        PERFORM pyes.lock_appends();
    END IF;
    -- TRUNCATE waits for every open transaction that read the table; appends may be held
    -- back meanwhile, so give up (PE305) rather than wait without end.
    v_previous := current_setting('lock_timeout');
    PERFORM set_config('lock_timeout', '5s', true);
    FOREACH v_table IN ARRAY v.tables LOOP
        BEGIN
            EXECUTE format('TRUNCATE %I.%I', v.schema_name, v_table);
        EXCEPTION WHEN lock_not_available THEN
            RAISE EXCEPTION 'projection % cannot be reset now', quote_literal(p_name)
                USING ERRCODE = 'PE305',
                      DETAIL = format('Emptying %I.%I waited 5 seconds for transactions that still use the table.', v.schema_name, v_table),
                      HINT = 'End the open transactions that read the table (pg_stat_activity shows them), then reset again.';
        END;
    END LOOP;
    PERFORM set_config('lock_timeout', v_previous, true);
    UPDATE pyes.projections r
       SET state = CASE r.mode WHEN 'inline' THEN 'catching_up' ELSE 'running' END,
           checkpoint_xid = '0', checkpoint_position = 0, events_processed = 0,
           needs_rebuild = false, needs_rebuild_reason = NULL, last_error = NULL,
           last_error_sqlstate = NULL, failed_event_id = NULL, caught_up_at = NULL, updated_at = now()
     WHERE r.name = v.name AND r.version = v.version
    RETURNING * INTO v;
    RETURN v;
END;
$$;

-- Point the views of a projection at this version's tables.
CREATE OR REPLACE FUNCTION pyes.point_views(p pyes.projections)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    i integer;
    v_view text;
    v_select text;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p.views), 0) LOOP
        v_view := (SELECT string_agg(quote_ident(part), '.') FROM unnest(parse_ident(p.views[i])) part);
        v_select := format('SELECT * FROM %I.%I', p.schema_name, p.tables[i]);
        BEGIN
            EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', v_view, v_select);
        EXCEPTION WHEN invalid_table_definition OR wrong_object_type OR feature_not_supported OR datatype_mismatch THEN
            -- The new version's columns differ: replace the view within this transaction.
            EXECUTE format('DROP VIEW %s', v_view);
            EXECUTE format('CREATE VIEW %s AS %s', v_view, v_select);
        END;
    END LOOP;
END;
$$;

-- Make a version current. It must have caught up (PE306): an inline projection must be
-- running inline, an asynchronous one must have nothing of its types left to process.
CREATE OR REPLACE FUNCTION pyes.switch_projection(p_name text, p_version integer)
RETURNS pyes.projections
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v pyes.projections;
    v_left bigint;
BEGIN
    IF p_version IS NULL THEN
        PERFORM pyes.invalid_projection_argument('pyes.switch_projection', 'p_version', NULL, 'the version to make current');
    END IF;
    v := pyes.projection_row(p_name, p_version);
    SELECT s.lag_events INTO v_left FROM pyes.projection_status(p_name) s WHERE s.version = p_version;
    IF v.state NOT IN ('running') OR v_left > 0 THEN
        RAISE EXCEPTION 'projection % version % has not caught up', quote_literal(p_name), p_version
            USING ERRCODE = 'PE306',
                  DETAIL = format('Version %s is %s with %s events left to process; queries keep reading the current version.',
                                  p_version, v.state, v_left),
                  HINT = 'Run it until it has caught up (pyes projections run, or pyes.run_projection), then switch.';
    END IF;
    -- Unset the old current version first: the unique index allows one current per name.
    UPDATE pyes.projections r SET is_current = false, updated_at = now()
     WHERE r.name = p_name AND r.is_current AND r.version <> p_version;
    UPDATE pyes.projections r SET is_current = true, updated_at = now()
     WHERE r.name = p_name AND r.version = p_version
    RETURNING * INTO v;
    PERFORM pyes.point_views(v);
    RETURN v;
END;
$$;
