-- Installs the whole pyes schema with psql alone:
--
--     psql -v ON_ERROR_STOP=1 -f sql/install.sql "$DATABASE_URL"
--
-- The alembic migrations run exactly these files, in this order (pyes/sqlfiles.py reads
-- the \ir lines below), so both paths give the same schema. A "-- revision:" line says
-- which alembic revision introduces the files below it: that revision runs its table files
-- once, then re-applies every function file introduced up to it (they are all CREATE OR
-- REPLACE).
BEGIN;
-- revision: pyes_0001
\ir schema/001_schema.sql
\ir schema/002_streams.sql
\ir schema/003_events.sql
\ir functions/010_settings.sql
\ir functions/011_checkpoint.sql
\ir functions/012_recorded_events.sql
\ir functions/020_immutability.sql
\ir functions/030_validate.sql
\ir functions/040_append.sql
\ir functions/041_stream_metadata.sql
\ir functions/050_read_stream.sql
\ir functions/051_read_all.sql
\ir functions/052_read_category.sql
\ir functions/053_read_correlation.sql
-- revision: pyes_0002
\ir schema/005_snapshots.sql
\ir functions/060_snapshots.sql
\ir functions/070_time_travel.sql
\ir functions/080_rewind.sql
-- revision: pyes_0003
\ir schema/006_projections.sql
\ir functions/045_notify.sql
\ir functions/090_projection_registry.sql
\ir functions/091_projection_apply.sql
\ir functions/092_projection_inline.sql
\ir functions/093_projection_async.sql
\ir functions/094_projection_status.sql
\ir functions/095_projection_versions.sql
\ir functions/096_projection_temporal.sql
-- revision: pyes_0004
\ir schema/007_subscriptions.sql
\ir functions/100_subscriptions.sql
\ir functions/101_subscription_read.sql
\ir functions/102_subscription_leases.sql
\ir functions/103_subscription_checkpoints.sql
\ir functions/104_parked_events.sql
\ir functions/105_processed_events.sql
\ir functions/106_replay.sql
-- revision: pyes_0005
\ir schema/008_capture.sql
\ir functions/110_capture.sql
\ir functions/111_capture_trigger.sql
\ir functions/112_capture_admin.sql
\ir functions/113_capture_backfill.sql
\ir functions/114_capture_time_travel.sql
\ir functions/115_capture_restore.sql
-- revision: pyes_0006
\ir schema/009_event_schemas.sql
\ir functions/120_event_schemas.sql
\ir functions/121_event_upcasters.sql
\ir functions/122_schema_versions.sql
\ir functions/123_upcast.sql
\ir functions/124_append_schema_check.sql
\ir functions/125_upcast_reads.sql
\ir functions/126_schema_drift.sql
\ir functions/127_projection_evolution.sql
-- revision: pyes_0007
\ir schema/010_listeners.sql
\ir functions/130_append_trigger.sql
-- revision: pyes_0008
\ir schema/011_stream_row.sql
\ir functions/140_stream_row.sql
-- revision: pyes_0009
-- (No file of its own: it re-applies the function files above, so that a database at
-- pyes_0008 gets the capture trigger's short path and batch projection handlers. A change
-- to a function file that existing databases need comes with such a revision.)
COMMIT;
