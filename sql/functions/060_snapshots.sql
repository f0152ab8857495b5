-- Saving and loading snapshots. See schema/005_snapshots.sql.

-- Checks shared by both functions: an aggregate type is 1 to 255 characters without control
-- characters, and a schema version is 1 or more.
CREATE OR REPLACE FUNCTION pyes.validate_snapshot_kind(p_aggregate_type text, p_schema_version integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_aggregate_type IS NULL OR p_aggregate_type = '' OR char_length(p_aggregate_type) > 255
       OR p_aggregate_type ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'invalid aggregate type %', coalesce(quote_literal(p_aggregate_type), 'NULL')
            USING ERRCODE = 'PE109',
                  DETAIL = 'An aggregate type is 1 to 255 characters without control characters, such as ''BankAccount''.',
                  HINT = 'Pass the name of the aggregate class the state belongs to.';
    END IF;
    IF p_schema_version IS NULL OR p_schema_version < 1 THEN
        RAISE EXCEPTION 'invalid snapshot schema version %', coalesce(p_schema_version::text, 'NULL')
            USING ERRCODE = 'PE109',
                  DETAIL = 'A snapshot schema version is a whole number of 1 or more.',
                  HINT = 'Raise the number whenever the shape of the saved state changes.';
    END IF;
END;
$$;

-- Saves the state of an aggregate after version p_version of its stream. The stream must
-- have reached that version (in this transaction or before), so a snapshot can be written in
-- the same transaction as the append it follows. Saving the same (stream, type, schema
-- version, version) again replaces the state.
CREATE OR REPLACE FUNCTION pyes.save_snapshot(
    p_stream_id text, p_aggregate_type text, p_schema_version integer, p_version bigint, p_state jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_current bigint;
BEGIN
    PERFORM pyes.validate_stream_id(p_stream_id);
    PERFORM pyes.validate_snapshot_kind(p_aggregate_type, p_schema_version);
    IF p_state IS NULL OR jsonb_typeof(p_state) <> 'object' THEN
        RAISE EXCEPTION 'invalid snapshot state: it must be a JSON object'
            USING ERRCODE = 'PE103',
                  DETAIL = format('pyes.save_snapshot(%L, ...) got %s.', p_stream_id, coalesce(jsonb_typeof(p_state), 'NULL')),
                  HINT = 'Save the state as an object of its fields, such as {"balance": "10.00"}.';
    END IF;
    v_current := pyes.stream_version(p_stream_id);
    IF p_version IS NULL OR p_version < 1 OR p_version > v_current THEN
        RAISE EXCEPTION 'invalid snapshot version % for stream %', coalesce(p_version::text, 'NULL'), quote_literal(p_stream_id)
            USING ERRCODE = 'PE110',
                  DETAIL = format('Stream %L is at version %s; a snapshot is taken at a version from 1 to %s.',
                                  p_stream_id, v_current, v_current),
                  HINT = 'Snapshot the state after the events it was built from, once they are appended.';
    END IF;
    INSERT INTO pyes.snapshots AS s (stream_id, aggregate_type, schema_version, version, state, recorded_at)
    VALUES (p_stream_id, p_aggregate_type, p_schema_version, p_version, p_state, clock_timestamp())
    ON CONFLICT (stream_id, aggregate_type, schema_version, version)
        DO UPDATE SET state = excluded.state, recorded_at = excluded.recorded_at;
END;
$$;

-- The latest snapshot of the stream for this aggregate type and schema version, at or below
-- p_max_version (default: any). No row when there is none: load from the first event then.
CREATE OR REPLACE FUNCTION pyes.load_snapshot(
    p_stream_id text, p_aggregate_type text, p_schema_version integer, p_max_version bigint DEFAULT NULL)
RETURNS TABLE (version bigint, state jsonb, recorded_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pyes.validate_stream_id(p_stream_id);
    PERFORM pyes.validate_snapshot_kind(p_aggregate_type, p_schema_version);
    RETURN QUERY
    SELECT s.version, s.state, s.recorded_at
      FROM pyes.snapshots s
     WHERE s.stream_id = p_stream_id AND s.aggregate_type = p_aggregate_type
       AND s.schema_version = p_schema_version
       AND s.version <= coalesce(p_max_version, 9223372036854775807)
     ORDER BY s.version DESC
     LIMIT 1;
END;
$$;
