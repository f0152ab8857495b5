-- Sessions that wait for appends on channel pyes_events (functions/130_append_trigger.sql).
-- pyes.listen() adds the caller's session, pyes.unlisten() removes it. Appends notify only
-- while this table has a row (unless pyes.notify says otherwise), because a notifying
-- transaction commits alone: PostgreSQL serialises the commits of every transaction that
-- sent a notification, so that concurrent writers stop sharing WAL flushes.
-- A row left by a session that ended without unlistening costs needless notifications, not
-- lost ones; the next pyes.listen() removes it (a session's pid is visible to every role in
-- pg_stat_activity, its other columns are not, so the pid is the key).
CREATE TABLE pyes.listeners (
    pid              integer     PRIMARY KEY,
    listening_since  timestamptz NOT NULL DEFAULT now(),
    application_name text        NOT NULL DEFAULT ''
);

COMMENT ON TABLE pyes.listeners IS 'Sessions listening on channel pyes_events: appends notify only while one is registered (pyes.listen).';
