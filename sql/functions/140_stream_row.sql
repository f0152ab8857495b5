-- A new stream's category: the part of its id before the first '-' (see
-- schema/011_stream_row.sql for why this is a trigger on INSERT, not a generated column).
-- Appends only UPDATE the row, so they never fire it.
CREATE OR REPLACE FUNCTION pyes.set_stream_category()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.category := split_part(NEW.stream_id, '-', 1);
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER streams_category
    BEFORE INSERT ON pyes.streams
    FOR EACH ROW EXECUTE FUNCTION pyes.set_stream_category();
