-- Event schemas: registering the JSON shape of (type, version), and checking data against it.
-- The supported subset of JSON Schema (anything else in the document is kept, not enforced):
--   {"type": "object",                       -- optional; "object" is the only value allowed
--    "required": ["field", ...],             -- top-level fields that must be present
--    "properties": {"field": {"type": T}}}   -- T: one of string number integer boolean object
--                                            --    array null, or a list of them; no "type": any
-- "integer" is a JSON number without a fractional part (1 and 1e2, not 1.0).

CREATE OR REPLACE FUNCTION pyes.validate_schema_type_name(p_type text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_type IS NULL OR char_length(p_type) > 255 OR p_type !~ '^[A-Za-z_$][A-Za-z0-9_.:/$-]*$' THEN
        RAISE EXCEPTION 'invalid event type %', coalesce(quote_literal(p_type), 'NULL')
            USING ERRCODE = 'PE102',
                  DETAIL = 'An event type is an ASCII letter, _ or $, then ASCII letters, digits or _ . : / $ -, at most 255 characters.',
                  HINT = 'Name the type as pyes.append accepts it, such as ''AccountBalanceDeposited''.';
    END IF;
END;
$$;

-- PE603 unless p_schema is a schema of the supported subset (see above).
CREATE OR REPLACE FUNCTION pyes.validate_json_schema(p_type text, p_version integer, p_schema jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_problem text;
    v_field text;
    v_property jsonb;
    v_types jsonb;
    v_known constant text[] := ARRAY['string', 'number', 'integer', 'boolean', 'object', 'array', 'null'];
BEGIN
    IF p_version IS NULL OR p_version NOT BETWEEN 1 AND 999999999 THEN
        v_problem := format('the version %s is not a whole number from 1 to 999999999', coalesce(p_version::text, 'NULL'));
    ELSIF p_schema IS NULL OR jsonb_typeof(p_schema) <> 'object' THEN
        v_problem := 'the schema is not a JSON object';
    ELSIF p_schema ? 'type' AND p_schema -> 'type' <> '"object"' THEN
        v_problem := format('its "type" is %s; event data is always an object', p_schema -> 'type');
    ELSIF p_schema ? 'required' AND (jsonb_typeof(p_schema -> 'required') <> 'array'
            OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_schema -> 'required') r WHERE jsonb_typeof(r) <> 'string')) THEN
        v_problem := '"required" is not an array of field names';
    ELSIF p_schema ? 'properties' AND jsonb_typeof(p_schema -> 'properties') <> 'object' THEN
        v_problem := '"properties" is not an object';
    ELSE
        FOR v_field, v_property IN SELECT key, value FROM jsonb_each(coalesce(p_schema -> 'properties', '{}')) LOOP
            IF jsonb_typeof(v_property) <> 'object' THEN
                v_problem := format('the property %L is not an object', v_field);
                EXIT;
            END IF;
            CONTINUE WHEN NOT v_property ? 'type';
            v_types := v_property -> 'type';
            IF jsonb_typeof(v_types) = 'string' THEN
                v_types := jsonb_build_array(v_types);
            END IF;
            IF jsonb_typeof(v_types) <> 'array' OR jsonb_array_length(v_types) = 0
               OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_types) t
                           WHERE jsonb_typeof(t) <> 'string' OR NOT (t #>> '{}') = ANY (v_known)) THEN
                v_problem := format('the "type" of property %L is %s; it must be one of %s, or a list of them',
                                    v_field, v_property -> 'type', array_to_string(v_known, ' '));
                EXIT;
            END IF;
        END LOOP;
    END IF;
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid event schema for % version %', quote_literal(p_type), coalesce(p_version::text, 'NULL')
            USING ERRCODE = 'PE603',
                  DETAIL = format('The schema of %L version %s cannot be used: %s.', p_type, coalesce(p_version::text, 'NULL'), v_problem),
                  HINT = 'pyes enforces a subset of JSON Schema: {"type": "object", "required": [...], "properties": {"field": {"type": "string"}}} (docs/schema-evolution.md).';
    END IF;
END;
$$;

-- Register the shape of (p_type, p_version). The same schema again changes nothing (returns
-- false); a different one for a registered version is refused (PE608) unless p_replace.
CREATE OR REPLACE FUNCTION pyes.register_event_schema(
    p_type text,
    p_version integer,
    p_schema jsonb,
    p_source text DEFAULT 'json_schema',
    p_replace boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old jsonb;
BEGIN
    PERFORM pyes.validate_schema_type_name(p_type);
    PERFORM pyes.validate_json_schema(p_type, p_version, p_schema);
    IF p_source IS NULL OR p_source NOT IN ('python', 'json_schema') THEN
        RAISE EXCEPTION 'invalid schema source %', coalesce(quote_literal(p_source), 'NULL')
            USING ERRCODE = 'PE603',
                  DETAIL = 'The source of an event schema is ''python'' (made from a class) or ''json_schema''.',
                  HINT = 'Leave p_source out: it defaults to ''json_schema''.';
    END IF;
    SELECT s.schema INTO v_old FROM pyes.event_schemas s WHERE s.type = p_type AND s.version = p_version FOR UPDATE;
    IF FOUND AND v_old = p_schema THEN
        RETURN false;
    ELSIF FOUND AND NOT coalesce(p_replace, false) THEN
        RAISE EXCEPTION 'event schema % version % is registered with another shape', quote_literal(p_type), p_version
            USING ERRCODE = 'PE608',
                  DETAIL = format('Registered: %s. New: %s.', v_old, p_schema),
                  HINT = 'A changed event shape is a new schema version: register it as version ' || (p_version + 1)
                         || ' with an upcaster from version ' || p_version || '. To correct a mistake in the registered schema, pass p_replace => true.';
    ELSIF FOUND THEN
        UPDATE pyes.event_schemas s SET schema = p_schema, source = p_source, registered_at = now()
         WHERE s.type = p_type AND s.version = p_version;
    ELSE
        INSERT INTO pyes.event_schemas (type, version, schema, source) VALUES (p_type, p_version, p_schema, p_source);
    END IF;
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION pyes.unregister_event_schema(p_type text, p_version integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM pyes.event_schemas s WHERE s.type = p_type AND s.version = p_version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no event schema % version %', coalesce(quote_literal(p_type), 'NULL'), coalesce(p_version::text, 'NULL')
            USING ERRCODE = 'PE607',
                  DETAIL = 'pyes.event_schemas has no row for this type and version.',
                  HINT = 'SELECT type, version FROM pyes.event_schemas lists the registered schemas.';
    END IF;
END;
$$;

-- Whether a JSON value is of one of the JSON Schema types in p_types (an array of names).
CREATE OR REPLACE FUNCTION pyes.json_type_matches(p_value jsonb, p_types jsonb)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_actual constant text := jsonb_typeof(p_value);
BEGIN
    RETURN p_types ? v_actual
        OR (v_actual = 'number' AND p_types ? 'integer' AND scale((p_value #>> '{}')::numeric) = 0);
END;
$$;

-- Raise PE601 (a required field is missing) or PE602 (a field has another JSON type) for
-- data that does not fit p_schema. p_event names the event in the DETAIL.
CREATE OR REPLACE FUNCTION pyes.check_event_data(p_schema jsonb, p_data jsonb, p_event text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_field text;
    v_types jsonb;
BEGIN
    IF jsonb_typeof(p_data) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'event data does not match its schema: it is not an object'
            USING ERRCODE = 'PE602',
                  DETAIL = format('%s: data is %s, expected object.', p_event, coalesce(jsonb_typeof(p_data), 'NULL')),
                  HINT = 'Event data is a JSON object of fields. Nothing was appended.';
    END IF;
    FOR v_field IN SELECT jsonb_array_elements_text(coalesce(p_schema -> 'required', '[]')) LOOP
        IF NOT p_data ? v_field THEN
            RAISE EXCEPTION 'event data does not match its schema: the required field % is missing', quote_literal(v_field)
                USING ERRCODE = 'PE601',
                      DETAIL = format('%s: the field %L is required (schema fields: %s).', p_event, v_field,
                                      coalesce((SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(p_schema -> 'properties') k), 'none listed')),
                      HINT = 'Add the field to the event data, or write the event at the schema version it was made for. Nothing was appended.';
        END IF;
    END LOOP;
    FOR v_field, v_types IN SELECT key, value -> 'type' FROM jsonb_each(coalesce(p_schema -> 'properties', '{}'))
                             WHERE value ? 'type' LOOP
        CONTINUE WHEN NOT p_data ? v_field;
        IF jsonb_typeof(v_types) = 'string' THEN
            v_types := jsonb_build_array(v_types);
        END IF;
        IF NOT pyes.json_type_matches(p_data -> v_field, v_types) THEN
            RAISE EXCEPTION 'event data does not match its schema: the field % is %, expected %', quote_literal(v_field),
                            jsonb_typeof(p_data -> v_field), (SELECT string_agg(t, ' or ') FROM jsonb_array_elements_text(v_types) t)
                USING ERRCODE = 'PE602',
                      DETAIL = format('%s: the field %L is %s %s, expected %s.', p_event, v_field, jsonb_typeof(p_data -> v_field),
                                      left((p_data -> v_field)::text, 60),
                                      (SELECT string_agg(t, ' or ') FROM jsonb_array_elements_text(v_types) t)),
                      HINT = 'Write the field with the JSON type the schema says (a Decimal as a string such as "10.10"). Nothing was appended.';
        END IF;
    END LOOP;
END;
$$;
