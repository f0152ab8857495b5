-- The bank demo's read models, kept by PostgreSQL itself (see docs/projections.md).
-- examples/demo.py registers them with pyes.Projections.register_file; from psql:
--
--   \i examples/bank_projections.sql
--   SELECT pyes.register_projection('balances', 'bank.apply_balance(pyes.events)',
--            ARRAY['AccountOpened','AccountBalanceDeposited','AccountBalanceWithdrawn','AccountClosed'],
--            'inline', ARRAY['balances'], 'bank', p_stream_column => 'stream_id');
--   SELECT pyes.register_projection('daily_activity', 'bank.apply_daily_activity(pyes.events)',
--            ARRAY['AccountBalanceDeposited','AccountBalanceWithdrawn'],
--            'async', ARRAY['daily_activity'], 'bank', p_stream_column => 'stream_id');
--
-- Handlers name their tables without a schema: pyes runs them with search_path set to the
-- projection's schema (or, for a temporal build, to the schema being built).

CREATE SCHEMA IF NOT EXISTS bank;

-- Inline: each account's balance, updated in the transaction of the append.
CREATE TABLE IF NOT EXISTS bank.balances (
    stream_id   text PRIMARY KEY,
    owner       text,
    currency    text,
    balance     numeric(20, 2) NOT NULL DEFAULT 0,
    is_open     boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION bank.apply_balance(e pyes.events) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    CASE e.type
    WHEN 'AccountOpened' THEN
        INSERT INTO balances (stream_id, owner, currency, updated_at)
        VALUES (e.stream_id, e.data ->> 'owner', e.data ->> 'currency', e.recorded_at);
    WHEN 'AccountBalanceDeposited' THEN
        UPDATE balances SET balance = balance + (e.data ->> 'amount')::numeric, updated_at = e.recorded_at
         WHERE stream_id = e.stream_id;
    WHEN 'AccountBalanceWithdrawn' THEN
        UPDATE balances SET balance = balance - (e.data ->> 'amount')::numeric, updated_at = e.recorded_at
         WHERE stream_id = e.stream_id;
    WHEN 'AccountClosed' THEN
        UPDATE balances SET is_open = false, updated_at = e.recorded_at WHERE stream_id = e.stream_id;
    END CASE;
END;
$$;

-- Asynchronous: money in and out of each account per day (UTC), kept by a worker.
CREATE TABLE IF NOT EXISTS bank.daily_activity (
    stream_id    text NOT NULL,
    day          date NOT NULL,
    deposited    numeric(20, 2) NOT NULL DEFAULT 0,
    withdrawn    numeric(20, 2) NOT NULL DEFAULT 0,
    movements    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (stream_id, day)
);

CREATE OR REPLACE FUNCTION bank.apply_daily_activity(e pyes.events) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    amount numeric := (e.data ->> 'amount')::numeric;
BEGIN
    INSERT INTO daily_activity AS d (stream_id, day, deposited, withdrawn, movements)
    VALUES (e.stream_id, (e.recorded_at AT TIME ZONE 'UTC')::date,
            CASE WHEN e.type = 'AccountBalanceDeposited' THEN amount ELSE 0 END,
            CASE WHEN e.type = 'AccountBalanceWithdrawn' THEN amount ELSE 0 END, 1)
    ON CONFLICT (stream_id, day) DO UPDATE
       SET deposited = d.deposited + excluded.deposited,
           withdrawn = d.withdrawn + excluded.withdrawn,
           movements = d.movements + 1;
END;
$$;
