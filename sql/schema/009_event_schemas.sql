-- Schema evolution (functions/120_event_schemas.sql .. 126_schema_drift.sql,
-- docs/schema-evolution.md): the JSON shape of each event type at each schema version, and
-- the upcasters that turn version N of a type into version N + 1 when events are read.

-- The shape of (type, version), as a subset of JSON Schema that appends are checked against:
-- {"type": "object", "required": [...], "properties": {"<field>": {"type": <json type or list>}}}.
CREATE TABLE pyes.event_schemas (
    type          text        NOT NULL,
    version       integer     NOT NULL CHECK (version BETWEEN 1 AND 999999999),
    schema        jsonb       NOT NULL CHECK (jsonb_typeof(schema) = 'object'),
    -- 'python': made from a typed event class; 'json_schema': given as JSON Schema.
    source        text        NOT NULL CHECK (source IN ('python', 'json_schema')),
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (type, version)
);

-- One step: events of (type, from_version) become (coalesce(to_type, type), from_version + 1).
CREATE TABLE pyes.event_upcasters (
    type          text         NOT NULL,
    from_version  integer      NOT NULL CHECK (from_version BETWEEN 1 AND 999999998),
    -- NULL: the same type; otherwise the step renames the type.
    to_type       text,
    -- (jsonb) -> jsonb, run by the read functions; NULL for a pure rename, and for a step run
    -- by a client (language 'python').
    function      regprocedure,
    -- 'sql': the database runs the step, every client sees its result. 'python': the step is
    -- declared here (so the path is known) but runs in the Python client; SQL readers see the
    -- event at from_version.
    language      text         NOT NULL DEFAULT 'sql' CHECK (language IN ('sql', 'python')),
    registered_at timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (type, from_version),
    CHECK (to_type IS DISTINCT FROM type),
    CHECK (language = 'sql' OR function IS NULL),
    CHECK (language = 'python' OR function IS NOT NULL OR to_type IS NOT NULL)
);

CREATE INDEX event_upcasters_to_type_idx ON pyes.event_upcasters (to_type) WHERE to_type IS NOT NULL;

-- Derived from the two tables above by a trigger (122_schema_versions.sql), one row per type
-- that has a schema or an upcaster: what the read functions look up for each row, with one
-- index probe, to decide whether it needs pyes.upcast.
CREATE TABLE pyes.event_type_versions (
    type            text    PRIMARY KEY,
    -- The highest registered schema version of the type, or the highest version an upcaster
    -- produces for it (renames included), whichever is higher; 0 for a type that is only
    -- renamed away.
    current_version integer NOT NULL,
    -- Rows of the type stored below this version go through pyes.upcast: the current version,
    -- or one above the highest version an upcaster starts from (a rename away), if higher.
    upcast_below    integer NOT NULL
);

-- The event schema versions a projection was built from (type -> version), recorded by
-- pyes.record_projection_schema_versions when it is registered or reset; pyes check reports a
-- projection built from older versions than the current ones. (A table of its own rather than
-- a column of pyes.projections, so that this revision's downgrade leaves pyes.projections
-- exactly as revision pyes_0003 made it.)
CREATE TABLE pyes.projection_schema_versions (
    name        text        NOT NULL,
    version     integer     NOT NULL,
    built_with  jsonb       NOT NULL CHECK (jsonb_typeof(built_with) = 'object'),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version),
    FOREIGN KEY (name, version) REFERENCES pyes.projections (name, version) ON DELETE CASCADE
);

COMMENT ON TABLE pyes.event_schemas IS 'JSON shape of each event type at each schema version; appends of a registered (type, version) are checked against it. Register with pyes.register_event_schema.';
COMMENT ON TABLE pyes.event_upcasters IS 'Upcasters: (type, from_version) -> (to_type or type, from_version + 1), applied by the read functions. Register with pyes.register_upcaster.';
COMMENT ON TABLE pyes.event_type_versions IS 'Current schema version of each event type, derived from pyes.event_schemas and pyes.event_upcasters (kept by a trigger; do not write).';
COMMENT ON TABLE pyes.projection_schema_versions IS 'Event schema versions each projection was built from (type -> version); written by pyes.record_projection_schema_versions.';
