-- Persistent subscriptions: defining them (docs/subscriptions.md).
--
-- A subscription follows the gap-free global order (051_read_all.sql), restricted to some
-- categories and types, spread over a fixed number of partitions by a hash of the stream id.
-- Each partition has its own checkpoint (pyes.subscription_partitions); a stream always
-- falls in the same partition, so its events are handled in order by whoever holds that
-- partition's lease (102_subscription_leases.sql).

-- Names and member ids: 1 to 255 characters, no control characters.
CREATE OR REPLACE FUNCTION pyes.validate_subscription_name(p_what text, p_value text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL OR p_value = '' OR char_length(p_value) > 255 OR p_value ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'invalid % %', p_what, coalesce(quote_literal(p_value), 'NULL')
            USING ERRCODE = 'PE403',
                  DETAIL = format('A %s is 1 to 255 characters without control characters.', p_what),
                  HINT = 'Use a stable, readable name such as ''SendDepositNotification''.';
    END IF;
END;
$$;

-- A subscription's filters: NULL (everything) or a non-empty array of valid values.
CREATE OR REPLACE FUNCTION pyes.validate_subscription_filters(p_categories text[], p_types text[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_category text;
BEGIN
    IF p_categories IS NOT NULL THEN
        IF cardinality(p_categories) = 0 OR array_position(p_categories, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'invalid category filter'
                USING ERRCODE = 'PE403',
                      DETAIL = format('The category filter %s is empty or holds a NULL.', p_categories),
                      HINT = 'Pass NULL for every category, or an array such as ARRAY[''account''].';
        END IF;
        FOREACH v_category IN ARRAY p_categories LOOP
            IF v_category = '' OR strpos(v_category, '-') > 0 OR char_length(v_category) > 255 THEN
                RAISE EXCEPTION 'invalid category %', quote_literal(v_category)
                    USING ERRCODE = 'PE403',
                          DETAIL = 'A category is the part of a stream id before its first ''-'': ''account'' for ''account-123''.',
                          HINT = 'Pass the category alone, without the stream''s id.';
            END IF;
        END LOOP;
    END IF;
    IF p_types IS NOT NULL AND (cardinality(p_types) = 0 OR array_position(p_types, NULL) IS NOT NULL
                                OR array_position(p_types, '') IS NOT NULL) THEN
        RAISE EXCEPTION 'invalid type filter'
            USING ERRCODE = 'PE403',
                  DETAIL = format('The type filter %s is empty or holds a NULL or an empty type.', p_types),
                  HINT = 'Pass NULL for every type, or an array such as ARRAY[''AccountBalanceDeposited''].';
    END IF;
END;
$$;

-- The partition of a stream: the first 32 bits of md5(stream id), modulo the partition
-- count. md5 is fixed forever, unlike PostgreSQL's internal hash functions, so a stream
-- stays in its partition across upgrades (its checkpoint depends on it).
CREATE OR REPLACE FUNCTION pyes.stream_partition(p_stream_id text, p_partitions integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (('x' || substr(md5(p_stream_id), 1, 8))::bit(32)::bigint % p_partitions)::integer;
END;
$$;

-- The subscription's row, or PE401.
CREATE OR REPLACE FUNCTION pyes.get_subscription(p_name text)
RETURNS pyes.subscriptions
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row pyes.subscriptions;
BEGIN
    SELECT s.* INTO v_row FROM pyes.subscriptions s WHERE s.name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown subscription %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = 'PE401',
                  DETAIL = format('No subscription is named %s.', coalesce(quote_literal(p_name), 'NULL')),
                  HINT = 'Create it first with pyes.create_subscription (pyes subscriptions create), or check the name (pyes subscriptions list).';
    END IF;
    RETURN v_row;
END;
$$;

-- Creates the subscription if it does not exist and returns true; returns false if it
-- exists with the same definition (categories, types, partitions), so that every worker
-- can call it at start. A different definition raises PE402. p_start applies at creation
-- only: 'beginning' (or NULL), 'now' (pyes.head_checkpoint), or a checkpoint token.
CREATE OR REPLACE FUNCTION pyes.create_subscription(
    p_name text,
    p_categories text[] DEFAULT NULL,
    p_types text[] DEFAULT NULL,
    p_partitions integer DEFAULT 1,
    p_start text DEFAULT 'beginning')
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_existing pyes.subscriptions;
    v_start text;
    v_checkpoint record;
    v_inserted integer;
BEGIN
    PERFORM pyes.validate_subscription_name('subscription name', p_name);
    PERFORM pyes.validate_subscription_filters(p_categories, p_types);
    IF p_partitions IS NULL OR p_partitions NOT BETWEEN 1 AND 1024 THEN
        RAISE EXCEPTION 'invalid partition count %', coalesce(p_partitions::text, 'NULL')
            USING ERRCODE = 'PE403',
                  DETAIL = 'A subscription has 1 to 1024 partitions, fixed at creation.',
                  HINT = 'Pick at least as many partitions as the most workers you will run (for example 16).';
    END IF;
    IF p_start IS NULL OR p_start IN ('beginning', '') THEN
        v_start := '0/0';
    ELSIF p_start = 'now' THEN
        v_start := pyes.head_checkpoint();
    ELSIF p_start ~ '^[0-9]{1,19}/[0-9]{1,18}$' THEN
        v_start := p_start;
    ELSE
        RAISE EXCEPTION 'invalid start %', quote_literal(p_start)
            USING ERRCODE = 'PE403',
                  DETAIL = 'A subscription starts at ''beginning'', ''now'' or a checkpoint token such as ''771/42''.',
                  HINT = 'Pass the checkpoint of the last event that should NOT be delivered, or ''beginning''.';
    END IF;
    v_checkpoint := pyes.parse_checkpoint(v_start);

    INSERT INTO pyes.subscriptions (name, categories, types, partitions, start_checkpoint)
    VALUES (p_name, p_categories, p_types, p_partitions, v_start)
    ON CONFLICT (name) DO NOTHING;
    GET DIAGNOSTICS v_inserted = ROW_COUNT;
    IF v_inserted = 0 THEN
        SELECT s.* INTO v_existing FROM pyes.subscriptions s WHERE s.name = p_name;
        IF v_existing.categories IS DISTINCT FROM p_categories OR v_existing.types IS DISTINCT FROM p_types
           OR v_existing.partitions <> p_partitions THEN
            RAISE EXCEPTION 'subscription % exists with another definition', quote_literal(p_name)
                USING ERRCODE = 'PE402',
                      DETAIL = format('It follows categories %s, types %s with %s partitions; the call asked for categories %s, types %s with %s partitions.',
                                      coalesce(v_existing.categories::text, 'all'), coalesce(v_existing.types::text, 'all'), v_existing.partitions,
                                      coalesce(p_categories::text, 'all'), coalesce(p_types::text, 'all'), p_partitions),
                      HINT = 'A subscription''s definition is fixed: use a new name, or delete this one (pyes.delete_subscription) to start over.';
        END IF;
        RETURN false;
    END IF;
    INSERT INTO pyes.subscription_partitions (subscription, "partition", checkpoint_xid, checkpoint_position)
    SELECT p_name, p, v_checkpoint.transaction_id, v_checkpoint."position"
      FROM generate_series(0, p_partitions - 1) AS p;
    RETURN true;
END;
$$;

-- Deletes the subscription with its checkpoints, members and parked events. Returns false
-- if there was none. The idempotency records (pyes.processed_events) are kept.
CREATE OR REPLACE FUNCTION pyes.delete_subscription(p_name text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_deleted integer;
BEGIN
    DELETE FROM pyes.subscriptions s WHERE s.name = p_name;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted > 0;
END;
$$;
