-- One row per stream. The row is the stream's lock: every append updates it, so
-- writers to the same stream queue on it and writers to different streams never meet.
CREATE TABLE pyes.streams (
    stream_id   text        PRIMARY KEY,
    -- "account-123" is in category "account": the part before the first '-'.
    category    text        NOT NULL GENERATED ALWAYS AS (split_part(stream_id, '-', 1)) STORED,
    -- Version of the stream's last event. Versions start at 1; an absent stream is at 0.
    version     bigint      NOT NULL CHECK (version >= 1),
    -- Transaction that wrote the last event. An append from an older transaction is
    -- refused with 40001 so that the global order keeps each stream's versions in order.
    last_xid    xid8        NOT NULL,
    metadata    jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX streams_category_idx ON pyes.streams (category, stream_id);

COMMENT ON TABLE pyes.streams IS 'One row per stream: current version, category and metadata. Written only by pyes.append.';
