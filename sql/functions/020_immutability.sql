-- Events are immutable for every role, the table's owner included: UPDATE, DELETE and
-- TRUNCATE of pyes.events fail. Streams cannot be deleted either, since their row holds
-- the version that the events' (stream_id, version) key continues from.

CREATE OR REPLACE FUNCTION pyes.forbid_event_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable: % on pyes.events is not allowed', TG_OP
        USING ERRCODE = 'PE201',
              DETAIL = 'pyes keeps every event forever; history is changed only by appending new events.',
              HINT = 'To correct a mistake, append a compensating event (or a rewind) to the stream.';
END;
$$;

CREATE OR REPLACE FUNCTION pyes.forbid_stream_delete()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'streams cannot be deleted: % on pyes.streams is not allowed', TG_OP
        USING ERRCODE = 'PE202',
              DETAIL = 'A stream row carries the version its immutable events continue from.',
              HINT = 'Mark the stream as closed with an event, or in its metadata (pyes.set_stream_metadata).';
END;
$$;

CREATE OR REPLACE TRIGGER events_immutable_rows
    BEFORE UPDATE OR DELETE ON pyes.events
    FOR EACH ROW EXECUTE FUNCTION pyes.forbid_event_change();

CREATE OR REPLACE TRIGGER events_immutable_table
    BEFORE TRUNCATE ON pyes.events
    FOR EACH STATEMENT EXECUTE FUNCTION pyes.forbid_event_change();

CREATE OR REPLACE TRIGGER streams_no_delete_rows
    BEFORE DELETE ON pyes.streams
    FOR EACH ROW EXECUTE FUNCTION pyes.forbid_stream_delete();

CREATE OR REPLACE TRIGGER streams_no_truncate
    BEFORE TRUNCATE ON pyes.streams
    FOR EACH STATEMENT EXECUTE FUNCTION pyes.forbid_stream_delete();
