-- Capture, part 5: time travel on captured tables. A row's state at a moment is the fold of
-- its stream's events recorded at or before it (recorded_at never goes down within a stream,
-- so these are a prefix of the stream): the last RowCreated or RowImported gives the row,
-- each later RowUpdated sets its changed columns, a RowDeleted ends it. Excluded columns are
-- not in the history, so they are absent from the states.

-- (stream, state) of every row of category p_prefix (or of the one stream p_stream_id) that
-- existed at p_at.
CREATE OR REPLACE FUNCTION pyes.capture_fold(p_prefix text, p_stream_id text, p_at timestamptz)
RETURNS TABLE (stream_id text, state jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    WITH ev AS (
        SELECT e.stream_id, e.version, e.type, e.data
          FROM pyes.events e
         WHERE e.stream_id = p_stream_id AND e.recorded_at <= p_at
        UNION ALL
        SELECT e.stream_id, e.version, e.type, e.data
          FROM pyes.events e
         WHERE p_stream_id IS NULL AND e.category = p_prefix AND e.recorded_at <= p_at
    ), base AS (
        SELECT DISTINCT ON (ev.stream_id) ev.stream_id, ev.version, ev.type, ev.data
          FROM ev
         WHERE ev.type IN ('RowCreated', 'RowImported', 'RowDeleted')
         ORDER BY ev.stream_id, ev.version DESC
    ), changed AS (
        SELECT DISTINCT ON (ev.stream_id, c.key) ev.stream_id, c.key, c.value -> 'new' AS value
          FROM ev
          JOIN base b ON b.stream_id = ev.stream_id AND ev.version > b.version
          CROSS JOIN LATERAL jsonb_each(ev.data -> 'changes') AS c
         WHERE ev.type = 'RowUpdated'
         ORDER BY ev.stream_id, c.key, ev.version DESC
    )
    SELECT b.stream_id,
           (b.data -> 'row') || coalesce((SELECT jsonb_object_agg(ch.key, ch.value)
                                            FROM changed ch WHERE ch.stream_id = b.stream_id), '{}'::jsonb)
      FROM base b
     WHERE b.type <> 'RowDeleted'
     ORDER BY b.stream_id;
END;
$$;

CREATE OR REPLACE FUNCTION pyes.capture_check_moment(p_at timestamptz, p_function text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_at IS NULL THEN
        RAISE EXCEPTION 'invalid moment NULL'
            USING ERRCODE = 'PE503',
                  DETAIL = format('%s needs the moment to look at.', p_function),
                  HINT = 'Pass a timestamptz, such as ''2026-11-24 15:00+01'', or now().';
    END IF;
END;
$$;

-- One row of a captured table as it was at p_at (NULL: it did not exist then, or its
-- history had not started). The key is '{"id": 42}', '[7, 3]' or '42' (pyes.capture_row_stream).
CREATE OR REPLACE FUNCTION pyes.capture_row_at(p_table regclass, p_key jsonb, p_at timestamptz)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reg pyes.captured_tables := pyes.capture_registered(p_table, false);
BEGIN
    PERFORM pyes.capture_check_moment(p_at, 'pyes.capture_row_at');
    RETURN (SELECT f.state FROM pyes.capture_fold(v_reg.stream_prefix, pyes.capture_row_stream(v_reg, p_key), p_at) f);
END;
$$;

-- Every row of a captured table as it was at p_at, one JSON object per row, in stream id
-- order. For the table's own row type:
--   SELECT (jsonb_populate_record(NULL::users, r)).* FROM pyes.capture_rows_at('users', '...') r;
CREATE OR REPLACE FUNCTION pyes.capture_rows_at(p_table regclass, p_at timestamptz)
RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reg pyes.captured_tables := pyes.capture_registered(p_table, false);
BEGIN
    PERFORM pyes.capture_check_moment(p_at, 'pyes.capture_rows_at');
    RETURN QUERY SELECT f.state FROM pyes.capture_fold(v_reg.stream_prefix, NULL, p_at) f;
END;
$$;

-- The history of one row, change by change, oldest first: each event with the row's state
-- after it (NULL after a delete) and who made the change, why, and from where.
CREATE OR REPLACE FUNCTION pyes.capture_history(p_table regclass, p_key jsonb)
RETURNS TABLE (
    version          bigint,
    recorded_at      timestamptz,
    type             text,
    operation        text,
    changes          jsonb,
    state            jsonb,
    actor            text,
    reason           text,
    correlation_id   uuid,
    db_role          text,
    application_name text,
    event_id         uuid)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reg   pyes.captured_tables := pyes.capture_registered(p_table, false);
    v_state jsonb;
    v_event record;
BEGIN
    FOR v_event IN
        SELECT e.* FROM pyes.events e
         WHERE e.stream_id = pyes.capture_row_stream(v_reg, p_key)
           AND e.type IN ('RowCreated', 'RowImported', 'RowUpdated', 'RowDeleted')
         ORDER BY e.version
    LOOP
        IF v_event.type = 'RowUpdated' THEN
            v_state := v_state || (SELECT jsonb_object_agg(c.key, c.value -> 'new') FROM jsonb_each(v_event.data -> 'changes') c);
            changes := v_event.data -> 'changes';
        ELSIF v_event.type = 'RowDeleted' THEN
            changes := (SELECT jsonb_object_agg(c.key, jsonb_build_object('old', c.value, 'new', NULL))
                          FROM jsonb_each(v_state) c);
            v_state := NULL;
        ELSE
            changes := (SELECT jsonb_object_agg(c.key, jsonb_build_object('old', v_state -> c.key, 'new', c.value))
                          FROM jsonb_each(v_event.data -> 'row') c
                         WHERE v_state IS NULL OR (v_state -> c.key) IS DISTINCT FROM c.value);
            v_state := v_event.data -> 'row';
        END IF;
        version := v_event.version;
        recorded_at := v_event.recorded_at;
        type := v_event.type;
        operation := v_event.metadata ->> 'operation';
        state := v_state;
        actor := v_event.metadata ->> 'actor';
        reason := v_event.metadata ->> 'reason';
        correlation_id := v_event.correlation_id;
        db_role := v_event.metadata ->> 'db_role';
        application_name := v_event.metadata ->> 'application_name';
        event_id := v_event.event_id;
        RETURN NEXT;
    END LOOP;
END;
$$;
