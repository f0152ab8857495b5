-- Wake-ups for readers that follow the global order (asynchronous projections,
-- subscriptions): one notification on channel pyes_events per appending statement,
-- delivered by PostgreSQL at commit, never for a transaction that rolls back. The payload is
-- empty on purpose: PostgreSQL folds identical notifications of one transaction into one,
-- and a listener re-reads from its checkpoint anyway. Listeners must also poll: a
-- notification can be missed across a reconnect or through a transaction-mode pooler.
CREATE OR REPLACE FUNCTION pyes.notify_events() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('pyes_events', '');
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER events_notify
    AFTER INSERT ON pyes.events
    FOR EACH STATEMENT EXECUTE FUNCTION pyes.notify_events();
