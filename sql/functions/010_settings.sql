-- Limits that a DBA can change without a migration, as custom settings:
--
--     ALTER DATABASE mydb SET pyes.max_event_bytes = '4194304';
--     SET pyes.max_event_bytes = '65536';            -- this session only
--
-- Unset, the defaults below apply.

-- Largest event accepted by pyes.append, in bytes of its stored JSONB (the whole event
-- object: type, data, metadata and ids). Default 1 MiB.
CREATE OR REPLACE FUNCTION pyes.max_event_bytes()
RETURNS integer
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_raw text := current_setting('pyes.max_event_bytes', true);
BEGIN
    IF v_raw IS NULL OR v_raw = '' THEN
        RETURN 1048576;
    END IF;
    IF v_raw !~ '^[0-9]{1,10}$' OR v_raw::bigint NOT BETWEEN 1 AND 1073741823 THEN
        RAISE EXCEPTION 'pyes.max_event_bytes is not a valid size: %', v_raw
            USING ERRCODE = 'PE109',
                  DETAIL = 'The setting must be a whole number of bytes between 1 and 1073741823.',
                  HINT = 'Fix it with SET pyes.max_event_bytes = ''1048576'' or ALTER DATABASE ... SET.';
    END IF;
    RETURN v_raw::integer;
END;
$$;
