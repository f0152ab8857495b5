-- What every read function returns: an event row plus the checkpoint token of its place in
-- the global order (pass it back to pyes.read_all / pyes.read_category to continue after
-- it). The view is also handy for ad-hoc SQL; it is a plain view, so the planner uses the
-- indexes of pyes.events through it.
CREATE OR REPLACE VIEW pyes.recorded_events AS
SELECT e.position, e.event_id, e.stream_id, e.category, e.version, e.type, e.schema_version,
       e.data, e.metadata, e.correlation_id, e.causation_id, e.recorded_at, e.transaction_id,
       -- Same format as pyes.checkpoint_token, written inline so that it costs no function call.
       e.transaction_id::text || '/' || e.position::text AS checkpoint
  FROM pyes.events e;

COMMENT ON VIEW pyes.recorded_events IS 'Events with their checkpoint token; the row type of every pyes.read_* function.';
