-- Every read function (pyes.read_stream, read_all, read_category, read_correlation,
-- get_event, read_stream_between/until, the subscription and replay reads) selects from this
-- view, so redefining it here gives them all the current shape of each event: type,
-- schema_version and data come out of pyes.upcast for rows that need it; the other columns
-- are as stored. Same columns as in 012_recorded_events.sql, which revision pyes_0006's
-- downgrade puts back.
--
-- Cost: when nothing is registered (pyes.event_type_versions is empty), the test below is
-- an InitPlan evaluated once per query, and each row costs nothing more than the plain view of
-- 012_recorded_events.sql. Otherwise each row pays an index probe into that small table, and
-- only rows stored below their type's current version (or with a registered step) call
-- pyes.upcast (three times: once per upcast column). Filters on position, stream_id,
-- category, version, transaction_id or correlation_id still use the indexes of pyes.events
-- (the view is one scan of pyes.events); a filter on type applies to the upcast type (a
-- renamed event is found under its new name).
CREATE OR REPLACE VIEW pyes.recorded_events AS
SELECT e.position, e.event_id, e.stream_id, e.category, e.version,
       CASE WHEN (SELECT EXISTS (SELECT 1 FROM pyes.event_type_versions))
                 AND EXISTS (SELECT 1 FROM pyes.event_type_versions v WHERE v.type = e.type AND e.schema_version < v.upcast_below)
            THEN (pyes.upcast(e.type, e.schema_version, e.data)).type ELSE e.type END AS type,
       CASE WHEN (SELECT EXISTS (SELECT 1 FROM pyes.event_type_versions))
                 AND EXISTS (SELECT 1 FROM pyes.event_type_versions v WHERE v.type = e.type AND e.schema_version < v.upcast_below)
            THEN (pyes.upcast(e.type, e.schema_version, e.data)).schema_version ELSE e.schema_version END AS schema_version,
       CASE WHEN (SELECT EXISTS (SELECT 1 FROM pyes.event_type_versions))
                 AND EXISTS (SELECT 1 FROM pyes.event_type_versions v WHERE v.type = e.type AND e.schema_version < v.upcast_below)
            THEN (pyes.upcast(e.type, e.schema_version, e.data)).data ELSE e.data END AS data,
       e.metadata, e.correlation_id, e.causation_id, e.recorded_at, e.transaction_id,
       -- Same format as pyes.checkpoint_token, written inline so that it costs no function call.
       e.transaction_id::text || '/' || e.position::text AS checkpoint
  FROM pyes.events e;

COMMENT ON VIEW pyes.recorded_events IS 'Events in their current shape (upcast, see docs/schema-evolution.md) with their checkpoint token; the row type of every pyes.read_* function.';
