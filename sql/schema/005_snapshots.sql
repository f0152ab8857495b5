-- Snapshots of aggregates: the state after a given version of a stream, so that loading
-- reads the latest snapshot and only the events after it. Snapshots are derived data: they
-- can be replaced or dropped at any time and are never the source of truth.
CREATE TABLE pyes.snapshots (
    stream_id       text        NOT NULL,
    -- What kind of aggregate the state belongs to, and the shape of that state: a snapshot
    -- whose schema version the code no longer uses is ignored, and the state rebuilt.
    aggregate_type  text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version >= 1),
    version         bigint      NOT NULL CHECK (version >= 1),
    state           jsonb       NOT NULL CHECK (jsonb_typeof(state) = 'object'),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, aggregate_type, schema_version, version)
);

COMMENT ON TABLE pyes.snapshots IS 'Aggregate state after a stream version. Written by pyes.save_snapshot, read by pyes.load_snapshot.';
