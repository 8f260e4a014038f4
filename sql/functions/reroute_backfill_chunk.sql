-- Move a chunk its provider cannot serve to the next history route, or fail it.
CREATE OR REPLACE FUNCTION pgbars.reroute_backfill_chunk(
    p_chunk_id bigint,
    p_lease_id uuid,
    p_error text
)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
For answers that no retry can change: the plan does not cover the range,
the provider does not know the ticker. The chunk goes to the next enabled
history route of its timeframe (by priority, after the provider that
refused) whose lookback reaches the chunk's first session, as pending
without the spent attempt; with no such route it fails for good. The
error is kept either way (secrets masked). Returns the new provider, or
NULL when the chunk failed.
*/
DECLARE
    v_chunk record;
    v_next text;
    v_error text := pgbars._redact_secrets(coalesce(p_error, 'unknown error'));
BEGIN
    SELECT c.id, c.provider, c.first_session, j.timeframe
    INTO v_chunk
    FROM pgbars.backfill_chunks AS c
    INNER JOIN pgbars.backfill_jobs AS j ON c.job_id = j.id
    WHERE c.id = p_chunk_id AND c.lease_id = p_lease_id AND c.status = 'running'
    FOR NO KEY UPDATE OF c;
    IF NOT FOUND THEN
        PERFORM pgbars._raise_lease_lost(p_chunk_id);
    END IF;

    SELECT r.provider INTO v_next
    FROM pgbars.provider_routes AS r
    INNER JOIN pgbars.providers AS p ON r.provider = p.name
    WHERE
        r.timeframe = v_chunk.timeframe
        AND r.purpose = 'history'
        AND r.enabled
        AND p.enabled
        AND r.provider <> v_chunk.provider
        AND r.priority > coalesce((
            SELECT cur.priority
            FROM pgbars.provider_routes AS cur
            WHERE
                cur.timeframe = v_chunk.timeframe
                AND cur.purpose = 'history'
                AND cur.provider = v_chunk.provider
        ), 0)
        AND (
            r.max_lookback IS NULL
            OR v_chunk.first_session >= (pgbars._now() AT TIME ZONE 'America/New_York')::date - r.max_lookback
        )
    ORDER BY r.priority
    LIMIT 1;

    UPDATE pgbars.backfill_chunks AS c
    SET
        provider = coalesce(v_next, c.provider),
        status = CASE WHEN v_next IS NULL THEN 'failed' ELSE 'pending' END,
        attempts = CASE WHEN v_next IS NULL THEN c.attempts ELSE greatest(c.attempts - 1, 0) END,
        next_attempt_at = CASE WHEN v_next IS NULL THEN c.next_attempt_at ELSE now() END,
        completed_at = CASE WHEN v_next IS NULL THEN now() END,
        last_error = CASE
            WHEN v_next IS NULL THEN v_error || ' (no other route serves this range)'
            ELSE v_error || format(' (moved from %s to %s)', c.provider, v_next)
        END,
        lease_id = NULL,
        lease_expires_at = NULL
    WHERE c.id = p_chunk_id;
    RETURN v_next;
END;
$$;

COMMENT ON FUNCTION pgbars.reroute_backfill_chunk(bigint, uuid, text) IS
'For a leased chunk its provider cannot serve (plan, unknown ticker): moves it to the next enabled history '
'route that reaches its sessions, pending again without the attempt, and returns that provider; '
'with none left, fails it and returns NULL. Raises PB001 when the lease is no longer this caller''s.';
