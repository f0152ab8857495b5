-- Undo by rewinding: a system event "$rewind" appended to a stream says "the state is as it
-- was at version N". History keeps everything (the mistaken events and the rewind stay
-- readable); whoever folds the stream (an aggregate, a projection) resets its state to that
-- of version N when it meets the rewind, then applies what follows. The reason and the actor
-- are in the event's metadata, so the undo is audited like any other change.

CREATE OR REPLACE FUNCTION pyes.rewind(
    p_stream_id text,
    p_to_version bigint,
    p_expected_version bigint,
    p_reason text,
    p_actor text,
    OUT stream_version bigint,
    OUT positions bigint[])
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_current bigint;
BEGIN
    PERFORM pyes.validate_stream_id(p_stream_id);
    IF coalesce(btrim(p_reason), '') = '' OR coalesce(btrim(p_actor), '') = '' THEN
        RAISE EXCEPTION 'a rewind needs a reason and an actor'
            USING ERRCODE = 'PE109',
                  DETAIL = format('pyes.rewind(%L, ...) got reason %s and actor %s.', p_stream_id,
                                  coalesce(quote_literal(p_reason), 'NULL'), coalesce(quote_literal(p_actor), 'NULL')),
                  HINT = 'Say why the stream is rewound and who decided it: both go into the audit trail.';
    END IF;
    IF p_expected_version IS NULL THEN
        PERFORM pyes.raise_invalid_expected_version(NULL);
    END IF;
    -- The target is checked against the stream as it is now; pyes.append then checks the
    -- expected version, so a stale decision fails with PE001 like any append.
    v_current := pyes.stream_version(p_stream_id);
    IF p_to_version IS NULL OR p_to_version < 0 OR p_to_version >= v_current THEN
        RAISE EXCEPTION 'invalid rewind target % for stream %', coalesce(p_to_version::text, 'NULL'), quote_literal(p_stream_id)
            USING ERRCODE = 'PE111',
                  DETAIL = CASE WHEN v_current = 0
                      THEN format('Stream %L has no events, so there is nothing to rewind.', p_stream_id)
                      ELSE format('Stream %L is at version %s; a rewind goes back to a version from 0 to %s.',
                                  p_stream_id, v_current, v_current - 1) END,
                  HINT = 'Rewind to the last version whose state was right.';
    END IF;
    SELECT a.stream_version, a.positions INTO stream_version, positions
      FROM pyes.append(p_stream_id,
                       jsonb_build_array(jsonb_build_object(
                           'type', '$rewind',
                           'data', jsonb_build_object('to_version', p_to_version),
                           'metadata', jsonb_build_object('reason', p_reason, 'actor', p_actor))),
                       p_expected_version::text) a;
END;
$$;
