-- Every event ever appended. Rows are immutable (see functions/020_immutability.sql).
CREATE TABLE pyes.events (
    -- Global position: unique and increasing in insert order, but NOT commit order.
    -- Readers of the global order use (transaction_id, position), see 051_read_all.sql.
    position        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL,
    stream_id       text        NOT NULL,
    -- Copied from the stream id so that a category can be read through one index.
    category        text        NOT NULL,
    version         bigint      NOT NULL,
    type            text        NOT NULL,
    schema_version  integer     NOT NULL DEFAULT 1,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    correlation_id  uuid,
    causation_id    uuid,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    -- The writing transaction. Rows whose transaction id is below the oldest running
    -- transaction id (pg_snapshot_xmin) can no longer be joined by a late commit.
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

-- The gap-free reads: all events, and one category, in (transaction_id, position) order.
CREATE INDEX events_global_order_idx ON pyes.events (transaction_id, position);
CREATE INDEX events_category_order_idx ON pyes.events (category, transaction_id, position);
-- "Every event caused by this request."
CREATE INDEX events_correlation_idx ON pyes.events (correlation_id, transaction_id, position)
    WHERE correlation_id IS NOT NULL;

COMMENT ON TABLE pyes.events IS 'Immutable log of every event. Append with pyes.append; read with the pyes.read_* functions.';
