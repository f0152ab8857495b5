-- The schema that holds every pyes object. Nothing of pyes lives anywhere else.
CREATE SCHEMA pyes;
COMMENT ON SCHEMA pyes IS 'pyes: an event store inside PostgreSQL. See docs/sql-api.md.';
