-- When the next chunk of these providers (and tickers) becomes claimable.
CREATE OR REPLACE FUNCTION pgbars.next_claimable_at(
    p_providers text[],
    p_tickers text[] DEFAULT NULL
)
RETURNS timestamptz
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    A worker with nothing to claim asks this to decide between sleeping
    until then (inside its budget) and exiting: a chunk waiting out its
    retry backoff, a lease about to expire, a provider paused by a 429.
    NULL when nothing is left to do for them. Same filters as the claim.
    */
    SELECT
        min(greatest(
            CASE WHEN c.status = 'pending' THEN c.next_attempt_at ELSE c.lease_expires_at END,
            coalesce(p.paused_until, '-infinity')
        ))
    FROM pgbars.backfill_chunks AS c
    INNER JOIN pgbars.providers AS p ON c.provider = p.name
    WHERE
        c.provider = ANY(p_providers)
        AND p.enabled
        AND c.status IN ('pending', 'running')
        AND (
            p_tickers IS NULL
            OR c.job_id IN (SELECT pgbars._ticker_jobs(p_tickers))
        );
$$;

COMMENT ON FUNCTION pgbars.next_claimable_at(text[], text[]) IS
'The earliest time a pending or leased chunk of p_providers (and p_tickers, when given) can be claimed, '
'counting retry backoff, lease expiry and provider pauses; NULL when none is left.';
