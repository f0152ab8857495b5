-- Checkpoints of the global and category reads: the pair (transaction id, position) of
-- the last event a reader has seen, written as one opaque token "<xid>/<position>".
-- Callers store the token and pass it back; only these two functions look inside it.

CREATE OR REPLACE FUNCTION pyes.checkpoint_token(p_transaction_id xid8, p_position bigint)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN p_transaction_id::text || '/' || p_position::text;
END;
$$;

-- NULL or '' means "from the beginning".
CREATE OR REPLACE FUNCTION pyes.parse_checkpoint(p_token text, OUT transaction_id xid8, OUT "position" bigint)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_token IS NULL OR p_token = '' THEN
        transaction_id := '0'::xid8;
        "position" := 0;
        RETURN;
    END IF;
    IF p_token !~ '^[0-9]{1,19}/[0-9]{1,18}$' THEN
        RAISE EXCEPTION 'invalid checkpoint %', quote_literal(p_token)
            USING ERRCODE = 'PE108',
                  DETAIL = 'A checkpoint is the "checkpoint" value of an event returned by pyes.read_all, pyes.read_category or pyes.read_correlation, such as ''771/42''.',
                  HINT = 'Pass the checkpoint of the last event you processed, or NULL to start from the beginning.';
    END IF;
    transaction_id := split_part(p_token, '/', 1)::xid8;
    "position" := split_part(p_token, '/', 2)::bigint;
END;
$$;
