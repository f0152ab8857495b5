-- The idempotency helper. A handler that writes to this database calls, in the transaction
-- of its own writes:
--
--     SELECT pyes.record_processed('SendDepositNotification', :event_id);
--
-- true: first delivery, go ahead. false: already applied (a redelivery), do nothing. Since
-- the record commits or rolls back with the handler's writes, a redelivered event has no
-- second effect. Two concurrent deliveries of one event serialize on the primary key: the
-- second waits for the first and then gets false (or true if the first rolled back).
CREATE OR REPLACE FUNCTION pyes.record_processed(p_consumer text, p_event_id uuid)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_inserted integer;
BEGIN
    PERFORM pyes.validate_subscription_name('consumer name', p_consumer);
    IF p_event_id IS NULL THEN
        RAISE EXCEPTION 'invalid event id NULL'
            USING ERRCODE = 'PE403',
                  DETAIL = 'The idempotency record needs the id of the event being handled.',
                  HINT = 'Pass the event_id of the delivered event.';
    END IF;
    INSERT INTO pyes.processed_events (consumer, event_id) VALUES (p_consumer, p_event_id)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_inserted = ROW_COUNT;
    RETURN v_inserted = 1;
END;
$$;
