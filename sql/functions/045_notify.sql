-- Revisions 0003 to 0006 install this trigger; revision 0007 (130_append_trigger.sql) drops it
-- and notifies from the one trigger after appends, only while a session listens.
-- Wake-ups for readers that follow the global order (asynchronous projections,
-- subscriptions): one notification on channel pyes_events per appending statement,
-- delivered by PostgreSQL at commit, never for a transaction that rolls back. The payload is
-- empty on purpose: PostgreSQL folds identical notifications of one transaction into one,
-- and a listener re-reads from its checkpoint anyway. Listeners must also poll: a
-- notification can be missed across a reconnect or through a transaction-mode pooler.
--
-- The price: PostgreSQL commits the transactions that sent a notification one at a time
-- (they take a lock on the notification queue), so concurrent writers stop sharing WAL
-- flushes (bench/notify.py and bench/subscriptions.py measure it). A write-heavy database
-- whose readers can live with polling turns notifications off with the setting pyes.notify:
--
--     ALTER DATABASE app SET pyes.notify = 'off';   -- or per role, per session, SET LOCAL
CREATE OR REPLACE FUNCTION pyes.notify_events() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(current_setting('pyes.notify', true), '') NOT IN ('off', 'false', '0') THEN
        PERFORM pg_catalog.pg_notify('pyes_events', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER events_notify
    AFTER INSERT ON pyes.events
    FOR EACH STATEMENT EXECUTE FUNCTION pyes.notify_events();
