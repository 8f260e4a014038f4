-- Delete quarantined rows that no stored chunk explains any more, older than p_keep.
CREATE OR REPLACE FUNCTION pgbars.prune_rejected_bars(p_keep interval DEFAULT '30 days')
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The quarantine (rejected_bars) keeps every refused row with its reason. A
history chunk's rows stay as long as the chunk: they explain the gaps of
the stored history, and the chunk's next fetch replaces them. Rows without
a chunk are today's-bars refusals (store_live_bars) and rows of chunks since
deleted (a removed symbol's jobs): this deletes those rejected more than
p_keep ago (at least a day, so a session in progress keeps its own).
pgbars serve runs it daily; returns how many rows it deleted.
*/
DECLARE
    v_deleted bigint;
BEGIN
    IF p_keep IS NULL OR p_keep < interval '1 day' THEN
        RAISE EXCEPTION 'p_keep must be at least 1 day, got %', coalesce(p_keep::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    DELETE FROM pgbars.rejected_bars AS r
    WHERE
        r.chunk_id IS NULL
        AND r.rejected_at < now() - p_keep;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;

COMMENT ON FUNCTION pgbars.prune_rejected_bars(interval) IS
'Deletes quarantined rows without a chunk (today''s-bars refusals, rows of deleted chunks) rejected more '
'than p_keep (default 30 days, at least 1 day) ago; a chunk''s rows stay with it. Returns how many.';
