-- How long until the next live refresh of these providers comes due (pgbars serve's timer).
CREATE OR REPLACE FUNCTION pgbars.seconds_until_live_refresh(p_providers text[])
RETURNS double precision
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    pgbars serve sleeps this long between passes of today's bars (or until
    woken). While a session trades: 0 when a planned refresh (live_plan) of
    p_providers is due now, else the time until the earliest comes due, by
    the rule claim_live_refreshes applies (refreshed_at + refresh_every, a
    lease's expiry, a provider's pause, a failed one's retry_at); refreshes found without data this
    session do not count. Between sessions: until the next session's
    pre-market open (by the planning clock, _now()). NULL when no watchlist
    symbol has a live timeframe of these providers.
    */
    WITH
    clock AS (
        SELECT
            pgbars._now() AS at,
            pgbars._live_session(pgbars._now()) AS session
    ),

    due AS (
        SELECT
            greatest(
                CASE
                    WHEN r.symbol_id IS NULL OR r.session_date IS DISTINCT FROM c.session THEN now()
                    WHEN r.lease_expires_at > now() THEN r.lease_expires_at
                    WHEN r.refreshed_at IS NULL THEN now()
                    ELSE r.refreshed_at + cfg.refresh_every
                END,
                coalesce(pr.paused_until, now()),
                CASE WHEN r.session_date = c.session THEN r.retry_at END
            ) AS at
        FROM pgbars.live_plan AS p
        CROSS JOIN clock AS c
        CROSS JOIN pgbars.live_settings AS cfg
        INNER JOIN pgbars.providers AS pr ON p.provider = pr.name
        LEFT JOIN pgbars.live_refreshes AS r ON p.symbol_id = r.symbol_id AND p.timeframe = r.timeframe
        WHERE
            p.provider = ANY(p_providers)
            AND pr.enabled
            AND (r.no_data IS NULL OR r.session_date IS DISTINCT FROM c.session)
    )

    SELECT
        CASE
            WHEN NOT EXISTS (SELECT FROM due) THEN NULL
            WHEN c.session IS NOT NULL
                THEN greatest(extract(EPOCH FROM (SELECT min(d.at) FROM due AS d) - now()), 0)::double precision
            ELSE (
                SELECT extract(EPOCH FROM min(s.premarket_open) - c.at)::double precision
                FROM pgbars.market_sessions AS s
                WHERE s.premarket_open > c.at
            )
        END
    FROM clock AS c;
$$;

COMMENT ON FUNCTION pgbars.seconds_until_live_refresh(text[]) IS
'Seconds until the next live refresh of p_providers is due (0: now): while a session trades by '
'refresh_every, leases and pauses; otherwise until the next pre-market open. NULL when none is planned.';
