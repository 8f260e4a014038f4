-- Give a chunk back without spending an attempt.
CREATE OR REPLACE FUNCTION pgbars.release_backfill_chunk(
    p_chunk_id bigint,
    p_lease_id uuid,
    p_not_before timestamptz DEFAULT NULL,
    p_reason text DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
For work the worker could not start or finish through no fault of the
chunk: a 429 (with p_not_before = the provider's Retry-After), a spent time
budget, a shutdown signal, a refused credential. The claim's attempt is
taken back. A chunk claimable at once (no p_not_before in the future)
wakes the running serve replicas (_wake_workers): one of them takes it over.
*/
BEGIN
    UPDATE pgbars.backfill_chunks AS c
    SET
        status = 'pending',
        attempts = greatest(c.attempts - 1, 0),
        next_attempt_at = greatest(now(), coalesce(p_not_before, now())),
        last_error = coalesce(pgbars._redact_secrets(p_reason), c.last_error),
        lease_id = NULL,
        lease_expires_at = NULL
    WHERE
        c.id = p_chunk_id
        AND c.lease_id = p_lease_id
        AND c.status = 'running';
    IF NOT FOUND THEN
        PERFORM pgbars._raise_lease_lost(p_chunk_id);
    END IF;
    IF p_not_before IS NULL OR p_not_before <= now() THEN
        PERFORM pgbars._wake_workers('released');
    END IF;
END;
$$;

COMMENT ON FUNCTION pgbars.release_backfill_chunk(bigint, uuid, timestamptz, text) IS
'Returns a leased chunk to pending without counting the attempt, optionally not before p_not_before. '
'Raises PB001 when the lease is no longer this caller''s.';
