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
    retry backoff, a lease about to expire, a provider paused by a 429; an
    action refresh being retried or leased (one due now is claimed before
    this is asked; its next daily refresh is not work left). NULL when nothing is left to do for them. Same filters as
    the claim.
    */
    SELECT min(w.claimable_at)
    FROM (
        SELECT greatest(l.due_at, coalesce(p.paused_until, '-infinity')) AS claimable_at
        FROM pgbars.providers AS p
        CROSS JOIN LATERAL (
            -- the provider's earliest lane to come due: the first entry of backfill_lanes_due_idx
            SELECT min(n.due_at) AS due_at
            FROM pgbars.backfill_lanes AS n
            WHERE
                n.provider = p.name
                AND n.due_at IS NOT NULL
                AND (
                    p_tickers IS NULL
                    OR n.job_id IN (SELECT pgbars._ticker_jobs(p_tickers))
                )
        ) AS l
        WHERE
            p.name = ANY(p_providers)
            AND p.enabled
            AND l.due_at IS NOT NULL
        UNION ALL
        -- an action refresh being retried or leased (attempts > 0); not the next daily one
        SELECT
            greatest(
                CASE WHEN r.lease_id IS NULL THEN r.due_at ELSE r.lease_expires_at END,
                coalesce(p.paused_until, '-infinity')
            )
        FROM pgbars.action_refreshes AS r
        INNER JOIN pgbars.providers AS p ON r.provider = p.name
        INNER JOIN pgbars.corporate_action_sources AS src ON r.provider = src.provider
        INNER JOIN pgbars.symbols AS s ON r.symbol_id = s.id
        WHERE
            r.provider = ANY(p_providers)
            AND p.enabled
            AND src.enabled
            AND r.attempts > 0
            AND (
                p_tickers IS NULL
                OR s.ticker IN (SELECT pgbars.normalize_ticker(t.ticker) FROM unnest(p_tickers) AS t (ticker))
            )
    ) AS w;
$$;

COMMENT ON FUNCTION pgbars.next_claimable_at(text[], text[]) IS
'The earliest time a pending or leased chunk of p_providers (and p_tickers, when given) can be claimed, '
'counting retry backoff, lease expiry and provider pauses; NULL when none is left.';
