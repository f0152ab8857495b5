-- Installs the whole pyes schema with psql alone:
--
--     psql -v ON_ERROR_STOP=1 -f sql/install.sql "$DATABASE_URL"
--
-- The alembic migrations run exactly these files, in this order (pyes/sqlfiles.py reads
-- the \ir lines below), so both paths give the same schema. Table files run once;
-- function files are CREATE OR REPLACE and can be re-applied by later migrations.
BEGIN;
\ir schema/001_schema.sql
\ir schema/002_streams.sql
\ir schema/003_events.sql
\ir schema/005_snapshots.sql
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
\ir functions/060_snapshots.sql
\ir functions/070_time_travel.sql
\ir functions/080_rewind.sql
COMMIT;
