-- Claim the corporate-action refreshes that are due now, with a lease.
CREATE OR REPLACE FUNCTION pgbars.claim_action_refreshes(
    p_worker text,
    p_providers text[],
    p_limit integer DEFAULT 1,
    p_lease interval DEFAULT '5 minutes',
    p_tickers text[] DEFAULT NULL
)
RETURNS TABLE (
    lease_id uuid,
    symbol_id uuid,
    ticker text,
    provider text,
    asked_from date,
    asked_to date,
    attempt integer,
    lease_expires_at timestamptz
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
An action refresh (action_refreshes: one per symbol with a backfill job and
enabled corporate_action_sources row) is due when nobody holds its lease
(or it expired), due_at has come (a new symbol's at once, then after its
source's refresh_every, or its retry backoff), and its provider is enabled,
not paused and among p_providers. Earliest due first (then the preferred
source, then by symbol id), through an index: the cost does not grow with
the number of due refreshes. The lease asks for
the ex-dates from the symbol's earliest planned session (an action before
every bar adjusts nothing) to today (the planning clock), and counts an
attempt. Called by claim_leases.
*/
DECLARE
    v_today date := (pgbars._now() AT TIME ZONE 'America/New_York')::date;
BEGIN
    PERFORM pgbars._check_claim_arguments(p_worker, p_limit, p_lease);
    RETURN QUERY
    WITH
    -- per usable source, its earliest due refreshes through action_refreshes_due_idx
    -- (provider, due_at, symbol_id): no sort of every due refresh, however many
    picked AS (
        SELECT
            r.symbol_id,
            r.provider
        FROM pgbars.corporate_action_sources AS src
        INNER JOIN pgbars.providers AS pr ON src.provider = pr.name
        CROSS JOIN LATERAL (
            SELECT
                d.symbol_id,
                d.provider,
                d.due_at
            FROM pgbars.action_refreshes AS d
            WHERE
                d.provider = src.provider
                AND d.due_at <= now()
                AND (d.lease_id IS NULL OR d.lease_expires_at <= now())
                AND (
                    p_tickers IS NULL
                    OR d.symbol_id IN (
                        SELECT s.id
                        FROM pgbars.symbols AS s
                        WHERE s.ticker IN (
                            SELECT pgbars.normalize_ticker(t.ticker) FROM unnest(p_tickers) AS t (ticker)
                        )
                    )
                )
            ORDER BY d.due_at, d.symbol_id
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        ) AS r
        WHERE
            src.provider = ANY(p_providers)
            AND src.enabled
            AND pr.enabled
            AND (pr.paused_until IS NULL OR pr.paused_until <= now())
        ORDER BY r.due_at, src.priority, r.symbol_id
        LIMIT p_limit
    ),

    claimed AS (
        UPDATE pgbars.action_refreshes AS r
        SET
            lease_id = gen_random_uuid(),
            claimed_by = p_worker,
            lease_expires_at = now() + p_lease,
            attempts = r.attempts + 1,
            asked_from = coalesce(
                (
                    SELECT min(c.first_session)
                    FROM pgbars.backfill_jobs AS j
                    INNER JOIN pgbars.backfill_chunks AS c ON j.id = c.job_id
                    WHERE j.symbol_id = r.symbol_id
                ),
                (v_today - interval '2 years')::date
            ),
            asked_to = v_today
        FROM picked
        WHERE r.symbol_id = picked.symbol_id AND r.provider = picked.provider
        RETURNING r.*
    )

    SELECT
        c.lease_id,
        c.symbol_id,
        s.ticker::text,
        c.provider,
        c.asked_from,
        c.asked_to,
        c.attempts,
        c.lease_expires_at
    FROM claimed AS c
    INNER JOIN pgbars.symbols AS s ON c.symbol_id = s.id
    ORDER BY c.due_at, s.ticker;
END;
$$;

COMMENT ON FUNCTION pgbars.claim_action_refreshes(text, text[], integer, interval, text[]) IS
'Leases up to p_limit due corporate-action refreshes (a symbol''s actions from one source) of p_providers; '
'each asks for the ex-dates from the symbol''s earliest planned session to today.';
