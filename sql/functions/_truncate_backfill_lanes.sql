-- Trigger function: a TRUNCATE of backfill_chunks fires no trigger of its rows; it empties the lanes too.
CREATE OR REPLACE FUNCTION pgbars._truncate_backfill_lanes()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
BEGIN
    -- DELETE, not TRUNCATE: a TRUNCATE ... CASCADE from symbols or jobs has the lanes in use
    DELETE FROM pgbars.backfill_lanes;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbars._truncate_backfill_lanes() IS
'Trigger function: empties backfill_lanes when backfill_chunks is truncated.';
