-- Projections: read models kept by PostgreSQL itself. One row per (name, version). A
-- projection's handler is a function taking one event (a pyes.events row) that writes the
-- projection's own tables; pyes calls it inline (in the appending transaction, from a trigger)
-- or asynchronously (pyes.run_projection, from its checkpoint in the gap-free order).
-- Projections written in Python have no SQL handler: the Python worker claims their batches.
CREATE TABLE pyes.projections (
    name                 text        NOT NULL,
    version              integer     NOT NULL CHECK (version >= 1),
    mode                 text        NOT NULL CHECK (mode IN ('inline', 'async')),
    -- NULL for a projection run by Python code (always asynchronous).
    handler              regprocedure,
    -- Optional: (rewind pyes.events, cancelled pyes.events[]) reverses what a $rewind cancels.
    rewind_handler       regprocedure,
    -- NULL: every type. A $rewind is always delivered, whatever the filter.
    event_types          text[],
    -- The schema of the projection's tables: handlers run with search_path = this schema,
    -- pg_catalog, pg_temp, so unqualified names in them resolve here (and, for a temporal
    -- build, to a copy of these tables elsewhere).
    schema_name          text        NOT NULL,
    tables               text[]      NOT NULL DEFAULT '{}',
    -- Stable names (views) that point at the current version's tables: blue/green switches.
    views                text[],
    -- Set when every table keys its rows by stream: a $rewind then recomputes the stream's
    -- rows with no code of the projection's own.
    stream_column        text,
    -- catching_up: building from history (an inline projection becomes 'running' once it has
    -- caught up); running; paused; failed (see last_error, failed_event_id).
    state                text        NOT NULL CHECK (state IN ('catching_up', 'running', 'paused', 'failed')),
    is_current           boolean     NOT NULL,
    -- Everything up to this (transaction id, position) has taken effect.
    checkpoint_xid       xid8        NOT NULL DEFAULT '0',
    checkpoint_position  bigint      NOT NULL DEFAULT 0,
    events_processed     bigint      NOT NULL DEFAULT 0,
    needs_rebuild        boolean     NOT NULL DEFAULT false,
    needs_rebuild_reason text,
    last_error           text,
    last_error_sqlstate  text,
    failed_event_id      uuid,
    registered_at        timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    caught_up_at         timestamptz,
    PRIMARY KEY (name, version),
    CHECK (handler IS NOT NULL OR mode = 'async'),
    CHECK (views IS NULL OR cardinality(views) = cardinality(tables))
);

-- At most one current version per projection: the one its views point at.
CREATE UNIQUE INDEX projections_current_idx ON pyes.projections (name) WHERE is_current;

COMMENT ON TABLE pyes.projections IS 'Registered projections (read models): see docs/projections.md. Change through pyes.register_projection and its sibling functions.';
