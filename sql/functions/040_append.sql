-- pyes.append: append a batch of events to one stream, atomically, with an expected-version
-- check. See docs/sql-api.md for the contract and docs/errors.md for every SQLSTATE.
--
-- Concurrency design:
-- * The stream's row in pyes.streams is the only thing two writers can meet on, so writers
--   to different streams never wait for each other: no table lock, no global row.
-- * On the hot path one compare-and-set UPDATE both checks the expected version and locks
--   the row. A racing writer with the same expectation blocks on the row, re-checks the
--   condition against the committed version (READ COMMITTED re-evaluates the WHERE clause)
--   and fails: exactly one of them wins.
-- * The global order is (transaction_id, position). A transaction that took its id before
--   the stream's last writer did would sort before that writer's events although its
--   version is higher, so such an append is refused with 40001 (serialization_failure):
--   the caller retries the whole transaction, as it would under SERIALIZABLE.

-- Diagnoses why the compare-and-set found no row, creates a new stream, or raises.
-- Returns the stream's new version, and the time read once the stream's row is locked
-- (recorded_at: so that within a stream it never goes down). Called with the row unlocked.
CREATE OR REPLACE FUNCTION pyes.claim_stream(
    p_stream_id text, p_mode text, p_expected bigint, p_count integer, p_xid xid8,
    OUT version bigint, OUT recorded_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version  bigint;
    v_last_xid xid8;
BEGIN
    -- Two rounds at most: a stream that another transaction creates while we look is
    -- locked and checked on the second round.
    FOR v_round IN 1..2 LOOP
        SELECT s.version, s.last_xid INTO v_version, v_last_xid
        FROM pyes.streams s WHERE s.stream_id = p_stream_id FOR UPDATE;

        IF NOT FOUND THEN
            IF p_mode = 'stream_exists' OR (p_mode = 'exact' AND p_expected <> 0) THEN
                PERFORM pyes.raise_wrong_expected_version(p_stream_id, p_mode, p_expected, 0);
            END IF;
            recorded_at := clock_timestamp();
            INSERT INTO pyes.streams AS s (stream_id, version, last_xid, created_at, updated_at)
            VALUES (p_stream_id, p_count, p_xid, recorded_at, recorded_at)
            ON CONFLICT (stream_id) DO NOTHING;
            IF FOUND THEN
                version := p_count;
                RETURN;
            END IF;
            CONTINUE;  -- created by a concurrent transaction that has committed since
        END IF;

        -- A failed expectation is reported first: such an append writes nothing, so the order
        -- of transactions does not matter to it.
        IF p_mode = 'no_stream' OR (p_mode = 'exact' AND v_version <> p_expected) THEN
            PERFORM pyes.raise_wrong_expected_version(p_stream_id, p_mode, p_expected, v_version);
        END IF;
        IF v_last_xid > p_xid THEN
            RAISE EXCEPTION 'stream % was written by a younger transaction; retry this transaction', quote_literal(p_stream_id)
                USING ERRCODE = '40001',
                      DETAIL = format('This transaction (id %s) started writing before the transaction (id %s) that appended version %s of stream %L committed. Appending now would put version %s before version %s in the global order.',
                                      p_xid, v_last_xid, v_version, p_stream_id, v_version + 1, v_version),
                      HINT = 'Roll back and run the whole transaction again, as after any serialization failure (the Python layer''s pyes.retry_transaction does this).';
        END IF;

        recorded_at := clock_timestamp();
        UPDATE pyes.streams s SET version = s.version + p_count, last_xid = p_xid, updated_at = recorded_at
        WHERE s.stream_id = p_stream_id;
        version := v_version + p_count;
        RETURN;
    END LOOP;

    RAISE EXCEPTION 'stream % was created by a concurrent transaction; retry this transaction', quote_literal(p_stream_id)
        USING ERRCODE = '40001',
              DETAIL = 'The stream appeared after this transaction''s snapshot was taken (REPEATABLE READ or SERIALIZABLE).',
              HINT = 'Roll back and run the whole transaction again.';
END;
$$;

-- Every "$rewind" event of the batch must say {"to_version": N} with N a whole number from 0
-- to the version before its own; otherwise PE111. p_base is the version before the batch.
CREATE OR REPLACE FUNCTION pyes.check_rewinds(p_stream_id text, p_events jsonb, p_base bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_bad record;
BEGIN
    SELECT e.ord, p_base + e.ord AS version, e.ev -> 'data' AS data INTO v_bad
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(ev, ord)
     WHERE e.ev ->> 'type' = '$rewind'
       AND NOT coalesce((e.ev -> 'data') - 'to_version' = '{}'::jsonb
                        AND jsonb_typeof(e.ev -> 'data' -> 'to_version') = 'number'
                        AND e.ev -> 'data' ->> 'to_version' ~ '^[0-9]{1,18}$'
                        AND (e.ev -> 'data' ->> 'to_version')::bigint < p_base + e.ord, false)
     ORDER BY e.ord LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'invalid rewind in event % of the batch', v_bad.ord
            USING ERRCODE = 'PE111',
                  DETAIL = format('Event %s for stream %L would be version %s with data %s; a $rewind has data {"to_version": N}, N from 0 to %s.',
                                  v_bad.ord, p_stream_id, v_bad.version, coalesce(v_bad.data::text, 'none'), v_bad.version - 1),
                  HINT = 'Use pyes.rewind, which builds the event for you.';
    END IF;
END;
$$;

-- PE001. The DETAIL always has this form, which docs/errors.md documents as stable:
--   stream "<id>" is at version <actual>; the append expected <expectation>.
CREATE OR REPLACE FUNCTION pyes.raise_wrong_expected_version(
    p_stream_id text, p_mode text, p_expected bigint, p_actual bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_expectation text := CASE p_mode
        WHEN 'exact' THEN 'version ' || p_expected
        WHEN 'no_stream' THEN 'no stream (version 0)'
        ELSE 'an existing stream' END;
BEGIN
    RAISE EXCEPTION 'wrong expected version for stream %', quote_literal(p_stream_id)
        USING ERRCODE = 'PE001',
              DETAIL = format('stream %s is at version %s; the append expected %s.',
                              to_jsonb(p_stream_id)::text, p_actual, v_expectation),
              HINT = 'Someone else appended first. Load the stream again, decide again, and append with the version you loaded.';
END;
$$;

-- Some id of the batch is already stored, or repeated in it: this is either a retry of an append that
-- succeeded (the same events, equal in every field, in the same stream at the same
-- consecutive versions, forming that whole append), which returns the original result and writes
-- nothing, or a duplicate, which raises PE002.
CREATE OR REPLACE FUNCTION pyes.replayed_append(
    p_stream_id text, p_events jsonb, p_mode text, p_expected bigint,
    OUT stream_version bigint, OUT positions bigint[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n      integer := jsonb_array_length(p_events);
    v_same   boolean;
    v_first  bigint;
    v_clash  record;
BEGIN
    SELECT count(x.event_id) = v_n
           AND bool_and(x.stream_id = p_stream_id AND x.version = x.first_version - 1 + x.ord
                        AND x.type = x.ev ->> 'type'
                        AND x.data = coalesce(x.ev -> 'data', '{}'::jsonb)
                        AND x.metadata = coalesce(x.ev -> 'metadata', '{}'::jsonb)
                        AND x.schema_version = coalesce((x.ev ->> 'schema_version')::integer, 1)
                        AND x.correlation_id IS NOT DISTINCT FROM (x.ev ->> 'correlation_id')::uuid
                        AND x.causation_id IS NOT DISTINCT FROM (x.ev ->> 'causation_id')::uuid) IS TRUE,
           min(x.version), max(x.version), array_agg(x.position ORDER BY x.ord)
      INTO v_same, v_first, stream_version, positions
      FROM (SELECT e.ord, e.ev, s.*, first_value(s.version) OVER (ORDER BY e.ord) AS first_version
              FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(ev, ord)
              LEFT JOIN pyes.events s ON s.event_id = (e.ev ->> 'id')::uuid) x;

    -- The stored events must also be one whole append: written by one transaction, with no
    -- event of that transaction right before or after them in the stream.
    IF v_same AND (p_mode NOT IN ('exact', 'no_stream') OR v_first = coalesce(p_expected, 0) + 1)
       AND (SELECT count(DISTINCT s.transaction_id) = 1
                   AND NOT EXISTS (SELECT 1 FROM pyes.events n
                                    WHERE n.stream_id = p_stream_id
                                      AND n.version IN (v_first - 1, stream_version + 1)
                                      AND n.transaction_id = min(s.transaction_id))
              FROM pyes.events s
             WHERE s.stream_id = p_stream_id AND s.version BETWEEN v_first AND stream_version) THEN
        RETURN;  -- an idempotent retry
    END IF;

    -- The first event whose id is stored already or appeared earlier in the batch.
    SELECT e.ord, e.ev ->> 'id' AS id, s.stream_id, s.version INTO v_clash
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(ev, ord)
      LEFT JOIN pyes.events s ON s.event_id = (e.ev ->> 'id')::uuid
     WHERE s.event_id IS NOT NULL
        OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_events) WITH ORDINALITY AS o(ev, ord)
                    WHERE o.ord < e.ord AND (o.ev ->> 'id')::uuid = (e.ev ->> 'id')::uuid)
     ORDER BY e.ord LIMIT 1;
    RAISE EXCEPTION 'duplicate event id %', v_clash.id
        USING ERRCODE = 'PE002',
              DETAIL = CASE WHEN v_clash.stream_id IS NULL
                  THEN format('Event %s of the batch for stream %L has id %s, which an earlier event of the batch has too.',
                              v_clash.ord, p_stream_id, v_clash.id)
                  ELSE format('Event %s of the batch for stream %L has id %s, which is already stored as version %s of stream %L, and the batch is not an exact retry of that append.',
                              v_clash.ord, p_stream_id, v_clash.id, v_clash.version, v_clash.stream_id) END,
              HINT = 'Give every event its own id. Retrying an append is safe only with the same events, ids and stream.';
END;
$$;

CREATE OR REPLACE FUNCTION pyes.append(
    p_stream_id text,
    p_events jsonb,
    p_expected_version text DEFAULT 'any',
    OUT stream_version bigint,
    OUT positions bigint[])
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_mode     text;
    v_expected bigint;
    v_count    integer;
    v_max      integer := 1048576;
    v_valid    boolean;
    v_types    text;
    v_ids      text;
    v_corr     text;
    v_caus     text;
    v_seen     boolean;
    v_xid      xid8;
    v_now      timestamptz;
    v_tried    boolean := false;
    v_id_list  uuid[];
    v_ev       jsonb;
    v_position bigint;
    v_short    boolean := false;
    v_versions text;
    -- One event type. A uuid in its canonical form (8-4-4-4-12 hex digits): the mask fixes
    -- the length and the places of the hyphens, the regex that there are four hyphens and only
    -- hex digits between them (LIKE costs a tenth of a regex).
    c_type       constant text := '^[A-Za-z_$][A-Za-z0-9_.:/$-]*$';
    c_canonical  constant text := '________-____-____-____-____________';
    c_hex_groups constant text := '^[0-9a-fA-F]+-[0-9a-fA-F]+-[0-9a-fA-F]+-[0-9a-fA-F]+-[0-9a-fA-F]+$';
    -- An event type, and any number of uuids (the forms PostgreSQL accepts, braces
    -- balanced), each in a list of values joined by newlines.
    c_types      constant text := '^[A-Za-z_$][A-Za-z0-9_.:/$-]*(\n[A-Za-z_$][A-Za-z0-9_.:/$-]*)*$';
    c_uuids      constant text := '^(\{[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}|[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12})'
                                  '(\n(\{[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}|[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}))*$';
    -- The same lists as JSON text (a batch's): types and uuids quoted, schema versions whole
    -- numbers from 1 to 999999999 (JSON text of a number has no leading zero).
    c_types_json    constant text := '^"[A-Za-z_$][A-Za-z0-9_.:/$-]*"(\n"[A-Za-z_$][A-Za-z0-9_.:/$-]*")*$';
    c_versions_json constant text := '^[1-9][0-9]{0,8}(\n[1-9][0-9]{0,8})*$';
    c_uuids_json    constant text := '^"(\{[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}|[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12})"'
                                     '(\n"(\{[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}|[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12})")*$';
BEGIN
    -- Input checks. They run inline, over the whole batch at once, because on this path a
    -- function call costs more than the checks themselves; when one fails, the validate_*
    -- and raise_* functions (030_validate.sql) name the problem and raise its SQLSTATE.
    IF p_stream_id IS NULL OR p_stream_id = '' OR char_length(p_stream_id) > 255
       OR left(p_stream_id, 1) = '-' OR p_stream_id ~ '[[:cntrl:]]' THEN
        PERFORM pyes.validate_stream_id(p_stream_id);
    END IF;
    IF p_expected_version IN ('any', 'no_stream', 'stream_exists') THEN
        v_mode := p_expected_version;
    ELSIF p_expected_version ~ '^[0-9]{1,18}$' THEN
        v_mode := 'exact';
        v_expected := p_expected_version::bigint;
    ELSE
        PERFORM pyes.raise_invalid_expected_version(p_expected_version);
    END IF;
    IF coalesce(current_setting('pyes.max_event_bytes', true), '') <> '' THEN
        v_max := pyes.max_event_bytes();
    END IF;
    IF jsonb_typeof(p_events) = 'array' AND jsonb_array_length(p_events) = 1 THEN
        -- One event, the common case. PostgreSQL prepares each expression of a function anew
        -- in every transaction (looking up and checking the privilege of every function it
        -- calls), so on this path the size of the test matters more than its work. An event
        -- in the form pyes's clients write (an id in the canonical form of a uuid, no
        -- schema_version or 1) passes the short test; anything else gets the full one, which
        -- accepts exactly what pyes.validate_events accepts (tests/test_validation_property.py).
        v_ev := p_events -> 0;
        v_count := 1;
        v_types := v_ev ->> 'type';
        v_ids := v_ev ->> 'id';
        v_corr := v_ev ->> 'correlation_id';
        v_caus := v_ev ->> 'causation_id';
        v_short := coalesce(jsonb_typeof(v_ev) = 'object'
            AND v_ev - '{id,type,data,metadata,schema_version,correlation_id,causation_id}'::text[] = '{}'::jsonb
            AND jsonb_typeof(v_ev -> 'type') = 'string'
            AND char_length(v_types) <= 255 AND v_types ~ c_type
            -- Only an object contains '{}': data and metadata are absent or objects.
            AND coalesce(v_ev -> 'data', '{}'::jsonb) @> '{}'::jsonb
            AND coalesce(v_ev -> 'metadata', '{}'::jsonb) @> '{}'::jsonb
            -- The JSON text of the number 1 (not 1.0, not "1").
            AND coalesce((v_ev -> 'schema_version')::text, '1') = '1'
            AND (v_ids IS NULL OR (v_ids LIKE c_canonical AND v_ids ~ c_hex_groups))
            AND pg_column_size(v_ev) <= v_max, false);
        -- Commands set these two; a test that does not run costs nothing.
        IF v_short AND (v_corr IS NOT NULL OR v_caus IS NOT NULL) THEN
            v_short := (v_corr IS NULL OR (v_corr LIKE c_canonical AND v_corr ~ c_hex_groups))
                   AND (v_caus IS NULL OR (v_caus LIKE c_canonical AND v_caus ~ c_hex_groups));
        END IF;
        v_valid := v_short;
        IF NOT v_short THEN
            v_valid := coalesce(jsonb_typeof(v_ev) = 'object'
                AND v_ev - '{id,type,data,metadata,schema_version,correlation_id,causation_id}'::text[] = '{}'::jsonb
                AND jsonb_typeof(v_ev -> 'type') = 'string'
                AND char_length(v_ev ->> 'type') <= 255
                AND coalesce(jsonb_typeof(v_ev -> 'data'), 'object') = 'object'
                AND coalesce(jsonb_typeof(v_ev -> 'metadata'), 'object') = 'object'
                AND coalesce(jsonb_typeof(v_ev -> 'id'), 'null') IN ('null', 'string')
                AND coalesce(jsonb_typeof(v_ev -> 'correlation_id'), 'null') IN ('null', 'string')
                AND coalesce(jsonb_typeof(v_ev -> 'causation_id'), 'null') IN ('null', 'string')
                AND strpos(concat(v_ev ->> 'type', v_ev ->> 'id', v_ev ->> 'correlation_id',
                                  v_ev ->> 'causation_id'), E'\n') = 0
                AND (NOT v_ev ? 'schema_version'
                     OR (jsonb_typeof(v_ev -> 'schema_version') = 'number'
                         AND v_ev ->> 'schema_version' ~ '^[0-9]{1,9}$'
                         AND (v_ev ->> 'schema_version')::integer >= 1))
                AND pg_column_size(v_ev) <= v_max, false);
            -- c_uuids costs about 10 microseconds per call (PostgreSQL's regex engine builds its
            -- automaton anew each time): an id in the canonical form is recognised by cheaper
            -- tests first.
            v_valid := v_valid AND v_types ~ c_types
                       AND (v_ids IS NULL OR (v_ids LIKE c_canonical AND v_ids ~ c_hex_groups) OR v_ids ~ c_uuids)
                       AND (v_corr IS NULL OR v_corr ~ c_uuids) AND (v_caus IS NULL OR v_caus ~ c_uuids);
        END IF;
    ELSIF jsonb_typeof(p_events) = 'array' THEN
        -- Per event, only what the lists below cannot show. The type, schema_version and ids
        -- are gathered as JSON text (strings quoted, a newline in one written \n), one list of
        -- each joined by newlines, and each list is tested by one regex: the quotes prove
        -- strings, 'null' and other values fail, and no value can split into two.
        SELECT count(*),
               -- coalesce: a missing key makes a test NULL, and bool_and skips NULLs.
               bool_and(coalesce(jsonb_typeof(e.ev) = 'object'
                   AND e.ev - '{id,type,data,metadata,schema_version,correlation_id,causation_id}'::text[] = '{}'::jsonb
                   AND e.ev ? 'type'
                   AND char_length(e.ev ->> 'type') <= 255
                   -- Both objects (the common case: one containment test), or each absent or one.
                   AND (e.ev @> '{"data": {}, "metadata": {}}'::jsonb
                        OR (coalesce(jsonb_typeof(e.ev -> 'data'), 'object') = 'object'
                            AND coalesce(jsonb_typeof(e.ev -> 'metadata'), 'object') = 'object'))
                   AND pg_column_size(e.ev) <= v_max, false)),
               string_agg((e.ev -> 'type')::text, E'\n'),
               string_agg((e.ev -> 'schema_version')::text, E'\n'),
               string_agg(nullif((e.ev -> 'id')::text, 'null'), E'\n'),
               string_agg(nullif((e.ev -> 'correlation_id')::text, 'null'), E'\n'),
               string_agg(nullif((e.ev -> 'causation_id')::text, 'null'), E'\n')
          INTO v_count, v_valid, v_types, v_versions, v_ids, v_corr, v_caus
          FROM jsonb_array_elements(p_events) AS e(ev);
        v_valid := v_valid AND v_count > 0 AND v_types ~ c_types_json
                   AND (v_versions IS NULL OR v_versions ~ c_versions_json)
                   AND (v_ids IS NULL OR v_ids ~ c_uuids_json)
                   AND (v_corr IS NULL OR v_corr ~ c_uuids_json) AND (v_caus IS NULL OR v_caus ~ c_uuids_json);
        v_ids := replace(v_ids, '"', '');
    END IF;
    IF v_valid IS NOT TRUE THEN
        v_count := pyes.validate_events(p_events, p_stream_id);  -- raises
    END IF;

    v_xid := pg_current_xact_id();

    -- Hot path, one statement: the stream exists, the expectation holds, and no id of the
    -- batch is stored already or repeated in it. The compare-and-set UPDATE checks and locks
    -- the stream's row (a racing writer with the same expectation blocks on the row, and
    -- READ COMMITTED re-checks the condition against the committed version: it fails), and
    -- the INSERT takes the new version from it. The time is read in the SET, once the row is
    -- locked: a writer that waited for the row reads it after the one before it committed, so
    -- recorded_at never goes down in a stream and "the stream as of a moment" is a prefix of it.
    -- When the UPDATE matches no row nothing is written, and the path below finds out why.
    -- A batch with a "$rewind" takes that path too (its target is checked against the version).
    IF v_mode <> 'no_stream' AND v_expected IS DISTINCT FROM 0 AND strpos(v_types, '$rewind') = 0 THEN
        v_tried := true;
        IF v_count = 1 THEN
            -- One event: two plain statements start faster than the batch statement below.
            UPDATE pyes.streams s
               SET version = s.version + 1, last_xid = v_xid, updated_at = clock_timestamp()
             WHERE s.stream_id = p_stream_id
               AND s.last_xid <= v_xid
               AND (v_mode <> 'exact' OR s.version = v_expected)
               AND (v_ids IS NULL OR NOT EXISTS (SELECT 1 FROM pyes.events x WHERE x.event_id = v_ids::uuid))
            RETURNING s.version, s.updated_at INTO stream_version, v_now;
            IF stream_version IS NOT NULL THEN
                INSERT INTO pyes.events AS t (event_id, stream_id, category, version, type, schema_version,
                                              data, metadata, correlation_id, causation_id, recorded_at, transaction_id)
                VALUES (coalesce(v_ids::uuid, gen_random_uuid()), p_stream_id, split_part(p_stream_id, '-', 1),
                        stream_version, v_types, coalesce((v_ev ->> 'schema_version')::integer, 1),
                        coalesce(v_ev -> 'data', '{}'::jsonb), coalesce(v_ev -> 'metadata', '{}'::jsonb),
                        v_corr::uuid, v_caus::uuid, v_now, v_xid)
                RETURNING t.position INTO v_position;
                positions := ARRAY[v_position];
                RETURN;
            END IF;
        END IF;
        v_id_list := string_to_array(v_ids, E'\n')::uuid[];
        WITH claimed AS (
            UPDATE pyes.streams s
               SET version = s.version + v_count, last_xid = v_xid, updated_at = clock_timestamp()
             WHERE s.stream_id = p_stream_id
               AND s.last_xid <= v_xid
               AND (v_mode <> 'exact' OR s.version = v_expected)
               -- One index probe per id, whatever the statistics say: a cached plan made while
               -- pyes.events was small (a new store, not analysed yet) would otherwise keep
               -- scanning the whole table for "= ANY (ids)" as it grows.
               AND NOT EXISTS (SELECT 1 FROM unnest(v_id_list) AS u(id),
                                      LATERAL (SELECT 1 FROM pyes.events x WHERE x.event_id = u.id LIMIT 1) AS hit)
               AND (v_count = 1 OR v_id_list IS NULL
                    OR (SELECT count(DISTINCT u.id) FROM unnest(v_id_list) AS u(id)) = cardinality(v_id_list))
            RETURNING s.version, s.updated_at
        ), inserted AS (
            INSERT INTO pyes.events AS t (event_id, stream_id, category, version, type, schema_version,
                                          data, metadata, correlation_id, causation_id, recorded_at, transaction_id)
                   -- When every event has an id, the list parsed above holds them in the batch's
                   -- order: reading a uuid from text again costs about 3,000 instructions.
            SELECT CASE WHEN cardinality(v_id_list) = v_count THEN v_id_list[e.ord]
                        ELSE coalesce((e.ev ->> 'id')::uuid, gen_random_uuid()) END,
                   p_stream_id,
                   split_part(p_stream_id, '-', 1),
                   c.version - v_count + e.ord,
                   e.ev ->> 'type',
                   coalesce((e.ev ->> 'schema_version')::integer, 1),
                   coalesce(e.ev -> 'data', '{}'::jsonb),
                   coalesce(e.ev -> 'metadata', '{}'::jsonb),
                   (e.ev ->> 'correlation_id')::uuid,
                   (e.ev ->> 'causation_id')::uuid,
                   c.updated_at,
                   v_xid
              FROM claimed c CROSS JOIN jsonb_array_elements(p_events) WITH ORDINALITY AS e(ev, ord)
             ORDER BY e.ord
            RETURNING t.position
        )
        SELECT c.version, (SELECT array_agg(i.position ORDER BY i.position) FROM inserted i)
          INTO stream_version, positions
          FROM claimed c;
        IF stream_version IS NOT NULL THEN
            RETURN;
        END IF;
    END IF;

    -- Are any of the batch's ids stored already, or repeated in it? Then this is a retry of
    -- an append that succeeded (which returns the original result and writes nothing) or a
    -- duplicate (PE002): pyes.replayed_append tells which. One index probe per id given.
    IF v_ids IS NOT NULL THEN
        v_id_list := string_to_array(v_ids, E'\n')::uuid[];
        SELECT (SELECT count(DISTINCT u.id) < count(*) FROM unnest(v_id_list) AS u(id))
               OR EXISTS (SELECT 1 FROM unnest(v_id_list) AS u(id),
                                 LATERAL (SELECT 1 FROM pyes.events e WHERE e.event_id = u.id LIMIT 1) AS hit)
          INTO v_seen;
        IF v_seen THEN
            SELECT r.stream_version, r.positions INTO stream_version, positions
              FROM pyes.replayed_append(p_stream_id, p_events, v_mode, v_expected) r;
            RETURN;
        END IF;
    END IF;

    -- The same compare-and-set for a batch with a "$rewind" (the hot path above was not tried).
    IF v_mode <> 'no_stream' AND v_expected IS DISTINCT FROM 0 AND NOT v_tried THEN
        UPDATE pyes.streams s
           SET version = s.version + v_count, last_xid = v_xid, updated_at = clock_timestamp()
         WHERE s.stream_id = p_stream_id
           AND s.last_xid <= v_xid
           AND (v_mode <> 'exact' OR s.version = v_expected)
        RETURNING s.version, s.updated_at INTO stream_version, v_now;
    END IF;
    -- A new stream, a failed expectation, or a younger writer: claim_stream tells which.
    IF stream_version IS NULL THEN
        SELECT c.version, c.recorded_at INTO stream_version, v_now
          FROM pyes.claim_stream(p_stream_id, v_mode, v_expected, v_count, v_xid) c;
    END IF;
    -- A "$rewind" must point back into the stream's past (see 080_rewind.sql).
    IF strpos(v_types, '$rewind') > 0 THEN
        PERFORM pyes.check_rewinds(p_stream_id, p_events, stream_version - v_count);
    END IF;

    WITH inserted AS (
        INSERT INTO pyes.events AS t (event_id, stream_id, category, version, type, schema_version,
                                      data, metadata, correlation_id, causation_id, recorded_at, transaction_id)
        SELECT coalesce((e.ev ->> 'id')::uuid, gen_random_uuid()),
               p_stream_id,
               split_part(p_stream_id, '-', 1),
               stream_version - v_count + e.ord,
               e.ev ->> 'type',
               coalesce((e.ev ->> 'schema_version')::integer, 1),
               coalesce(e.ev -> 'data', '{}'::jsonb),
               coalesce(e.ev -> 'metadata', '{}'::jsonb),
               (e.ev ->> 'correlation_id')::uuid,
               (e.ev ->> 'causation_id')::uuid,
               v_now,
               v_xid
          FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(ev, ord)
         ORDER BY e.ord
        RETURNING t.position
    )
    SELECT array_agg(i.position ORDER BY i.position) INTO positions FROM inserted i;
    -- An id inserted by a concurrent transaction since the check above makes this INSERT
    -- fail with unique_violation (23505) on events_event_id_key: nothing is written either.
END;
$$;

-- For clients that prefer a number to text: the exact expected version as bigint.
CREATE OR REPLACE FUNCTION pyes.append(
    p_stream_id text,
    p_events jsonb,
    p_expected_version bigint,
    OUT stream_version bigint,
    OUT positions bigint[])
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT a.stream_version, a.positions INTO stream_version, positions
      FROM pyes.append(p_stream_id, p_events, p_expected_version::text) a;
END;
$$;
