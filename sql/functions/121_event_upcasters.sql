-- Upcasters: registering the step from (type, from_version) to (to_type or type,
-- from_version + 1). An SQL step names a function (jsonb) -> jsonb that the read functions
-- run; a pure rename needs no function; a 'python' step only declares that the Python client
-- runs it (@upcaster in pyes.typed), so that the path is known to the database and to pyes check.

CREATE OR REPLACE FUNCTION pyes.invalid_upcaster(p_type text, p_from_version integer, p_problem text, p_hint text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'invalid upcaster for % version %', coalesce(quote_literal(p_type), 'NULL'), coalesce(p_from_version::text, 'NULL')
        USING ERRCODE = 'PE604',
              DETAIL = format('The upcaster of %L from version %s cannot be registered: %s.', p_type, coalesce(p_from_version::text, 'NULL'), p_problem),
              HINT = p_hint;
END;
$$;

CREATE OR REPLACE FUNCTION pyes.register_upcaster(
    p_type text,
    p_from_version integer,
    p_function regprocedure,
    p_to_type text DEFAULT NULL,
    p_language text DEFAULT 'sql',
    p_replace boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old pyes.event_upcasters;
    v_proc record;
BEGIN
    PERFORM pyes.validate_schema_type_name(p_type);
    IF p_to_type IS NOT NULL THEN
        PERFORM pyes.validate_schema_type_name(p_to_type);
    END IF;
    IF p_from_version IS NULL OR p_from_version NOT BETWEEN 1 AND 999999998 THEN
        PERFORM pyes.invalid_upcaster(p_type, p_from_version, 'the version is not a whole number from 1 to 999999998',
                                      'An upcaster starts from the schema version it reads: 1 for the first shape.');
    END IF;
    IF p_to_type = p_type THEN
        PERFORM pyes.invalid_upcaster(p_type, p_from_version, 'it renames the type to itself', 'Pass p_to_type => NULL for a step within the type.');
    END IF;
    IF p_language IS NULL OR p_language NOT IN ('sql', 'python') THEN
        PERFORM pyes.invalid_upcaster(p_type, p_from_version, format('the language %s is neither ''sql'' nor ''python''', coalesce(quote_literal(p_language), 'NULL')),
                                      'Leave p_language out for an SQL upcaster.');
    END IF;
    IF p_language = 'python' AND p_function IS NOT NULL THEN
        PERFORM pyes.invalid_upcaster(p_type, p_from_version, 'a step run by Python names no SQL function',
                                      'Pass p_function => NULL with p_language => ''python'', or register the SQL function with p_language => ''sql''.');
    END IF;
    IF p_language = 'sql' AND p_function IS NULL AND p_to_type IS NULL THEN
        PERFORM pyes.invalid_upcaster(p_type, p_from_version, 'it has neither a function nor a new type name, so it would change nothing',
                                      'Pass the function that turns the data of this version into the next, such as ''bank.deposited_v1_to_v2(jsonb)''::regprocedure.');
    END IF;
    IF p_function IS NOT NULL THEN
        SELECT p.prokind, p.proretset, p.prorettype, p.pronargs, p.proargtypes[0] AS arg INTO v_proc FROM pg_catalog.pg_proc p WHERE p.oid = p_function;
        IF v_proc.prokind <> 'f' OR v_proc.proretset OR v_proc.prorettype <> 'jsonb'::regtype OR v_proc.pronargs <> 1 OR v_proc.arg <> 'jsonb'::regtype THEN
            PERFORM pyes.invalid_upcaster(p_type, p_from_version, format('the function %s is not a plain function (jsonb) RETURNS jsonb', p_function),
                                          'An upcaster takes the data of version N and returns the data of version N + 1: CREATE FUNCTION f(data jsonb) RETURNS jsonb.');
        END IF;
    END IF;
    SELECT * INTO v_old FROM pyes.event_upcasters u WHERE u.type = p_type AND u.from_version = p_from_version FOR UPDATE;
    IF FOUND AND v_old.to_type IS NOT DISTINCT FROM p_to_type AND v_old.function IS NOT DISTINCT FROM p_function
             AND v_old.language = p_language THEN
        RETURN false;
    ELSIF FOUND AND NOT coalesce(p_replace, false) THEN
        RAISE EXCEPTION 'an upcaster of % from version % is registered already', quote_literal(p_type), p_from_version
            USING ERRCODE = 'PE608',
                  DETAIL = format('Registered: %s to %L (%s%s). New: %s to %L (%s%s).',
                                  p_type, coalesce(v_old.to_type, p_type), v_old.language, coalesce(', ' || v_old.function::text, ''),
                                  p_type, coalesce(p_to_type, p_type), p_language, coalesce(', ' || p_function::text, '')),
                  HINT = 'Each version has one step to the next. Pass p_replace => true to replace it (events are read through the new step at once).';
    ELSIF FOUND THEN
        UPDATE pyes.event_upcasters u SET to_type = p_to_type, function = p_function, language = p_language, registered_at = now()
         WHERE u.type = p_type AND u.from_version = p_from_version;
    ELSE
        INSERT INTO pyes.event_upcasters (type, from_version, to_type, function, language)
        VALUES (p_type, p_from_version, p_to_type, p_function, p_language);
    END IF;
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION pyes.unregister_upcaster(p_type text, p_from_version integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM pyes.event_upcasters u WHERE u.type = p_type AND u.from_version = p_from_version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no upcaster of % from version %', coalesce(quote_literal(p_type), 'NULL'), coalesce(p_from_version::text, 'NULL')
            USING ERRCODE = 'PE607',
                  DETAIL = 'pyes.event_upcasters has no row for this type and version.',
                  HINT = 'SELECT type, from_version FROM pyes.event_upcasters lists the registered upcasters.';
    END IF;
END;
$$;
