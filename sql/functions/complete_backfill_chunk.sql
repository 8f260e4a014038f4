-- Record a chunk as done, with what it wrote.
CREATE OR REPLACE FUNCTION pgbars.complete_backfill_chunk(
    p_chunk_id bigint,
    p_lease_id uuid,
    p_bars_written integer,
    p_bars_rejected integer DEFAULT 0,
    p_requests integer DEFAULT 1
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
Called in the same transaction as the chunk's bar writes. Zero bars is a
valid outcome and is recorded as such (bars_written = 0), so an empty
answer stays visible as a gap. Raises PB001 if the lease was lost.
*/
BEGIN
    UPDATE pgbars.backfill_chunks AS c
    SET
        status = 'done',
        bars_written = p_bars_written,
        bars_rejected = p_bars_rejected,
        requests_used = p_requests,
        completed_at = now(),
        last_error = NULL,
        lease_id = NULL,
        lease_expires_at = NULL
    WHERE
        c.id = p_chunk_id
        AND c.lease_id = p_lease_id
        AND c.status = 'running';
    IF NOT FOUND THEN
        PERFORM pgbars._raise_lease_lost(p_chunk_id);
    END IF;
END;
$$;

COMMENT ON FUNCTION pgbars.complete_backfill_chunk(bigint, uuid, integer, integer, integer) IS
'Marks a leased chunk done with bars written, bars rejected and requests used. '
'Raises PB001 when the lease is no longer this caller''s.';
