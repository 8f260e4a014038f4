-- Claim the live refreshes that are due now, with a lease.
CREATE OR REPLACE FUNCTION pgbars.claim_live_refreshes(
    p_worker text,
    p_providers text[],
    p_limit integer DEFAULT 10,
    p_lease interval DEFAULT '5 minutes',
    p_tickers text[] DEFAULT NULL
)
RETURNS TABLE (
    symbol_id uuid,
    ticker text,
    timeframe text,
    provider text,
    session_date date,
    range_start timestamptz,
    range_end timestamptz,
    targets text[],
    lease_id uuid
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
Only while a session trades (pre-market through after-hours, by the
planning clock _now()); otherwise nothing. Each live_plan row of a provider
in p_providers (and of p_tickers, when given) is due when nobody holds its
lease, it was not refreshed in the last live_settings.refresh_every (real
clock), and the provider has not been found to have no data for the symbol
this session (no_data), and a failed one's retry_at has come (see
release_live_refresh). The range is the whole session's extended hours, so
every refresh re-reads the day (one request) and the bars rolled up from it
(h1 from m15) are whole. Least recently refreshed first.
*/
DECLARE
    v_session date := pgbars._live_session(pgbars._now());
BEGIN
    PERFORM pgbars._check_claim_arguments(p_worker, p_limit, p_lease);
    IF v_session IS NULL THEN
        RETURN;
    END IF;

    -- One state row per planned refresh. New ones are inserted; rows whose plan or
    -- session changed are updated, skipping rows another worker has locked (it is
    -- storing them): no claim waits for another worker or locks rows it does not take.
    INSERT INTO pgbars.live_refreshes (symbol_id, timeframe, provider, session_date, targets)
    SELECT
        p.symbol_id,
        p.timeframe,
        p.provider,
        v_session,
        p.targets
    FROM pgbars.live_plan AS p
    WHERE
        p.provider = ANY(p_providers)
        AND (
            p_tickers IS NULL
            OR p.ticker IN (SELECT pgbars.normalize_ticker(t.ticker) FROM unnest(p_tickers) AS t (ticker))
        )
    ON CONFLICT ON CONSTRAINT live_refreshes_pkey DO NOTHING;

    UPDATE pgbars.live_refreshes AS r
    SET
        provider = p.provider,
        targets = p.targets,
        no_data = CASE WHEN r.session_date = v_session THEN r.no_data END,
        refreshed_at = CASE WHEN r.session_date = v_session THEN r.refreshed_at END,
        failures = CASE WHEN r.session_date = v_session THEN r.failures ELSE 0 END,
        retry_at = CASE WHEN r.session_date = v_session THEN r.retry_at END,
        session_date = v_session
    FROM pgbars.live_plan AS p
    WHERE
        r.symbol_id = p.symbol_id
        AND r.timeframe = p.timeframe
        AND (r.symbol_id, r.timeframe) IN (
            SELECT
                l.symbol_id,
                l.timeframe
            FROM pgbars.live_refreshes AS l
            INNER JOIN pgbars.live_plan AS lp ON l.symbol_id = lp.symbol_id AND l.timeframe = lp.timeframe
            WHERE
                lp.provider = ANY(p_providers)
                AND (l.provider, l.targets, l.session_date) IS DISTINCT FROM (lp.provider, lp.targets, v_session)
            FOR UPDATE OF l SKIP LOCKED
        );

    RETURN QUERY
    WITH
    picked AS (
        SELECT
            r.symbol_id,
            r.timeframe
        FROM pgbars.live_refreshes AS r
        INNER JOIN pgbars.live_plan AS p ON r.symbol_id = p.symbol_id AND r.timeframe = p.timeframe
        INNER JOIN pgbars.providers AS pr ON r.provider = pr.name
        CROSS JOIN pgbars.live_settings AS cfg
        WHERE
            r.provider = ANY(p_providers)
            AND (
                p_tickers IS NULL
                OR p.ticker IN (SELECT pgbars.normalize_ticker(t.ticker) FROM unnest(p_tickers) AS t (ticker))
            )
            AND r.session_date = v_session
            AND r.no_data IS NULL
            AND (r.lease_expires_at IS NULL OR r.lease_expires_at <= now())
            AND (r.refreshed_at IS NULL OR r.refreshed_at <= now() - cfg.refresh_every)
            AND (r.retry_at IS NULL OR r.retry_at <= now())
            AND pr.enabled
            AND (pr.paused_until IS NULL OR pr.paused_until <= now())
        ORDER BY r.refreshed_at ASC NULLS FIRST, p.ticker, r.timeframe
        LIMIT p_limit
        FOR UPDATE OF r SKIP LOCKED
    ),

    claimed AS (
        UPDATE pgbars.live_refreshes AS r
        SET
            lease_id = gen_random_uuid(),
            claimed_by = p_worker,
            lease_expires_at = now() + p_lease
        FROM picked
        WHERE r.symbol_id = picked.symbol_id AND r.timeframe = picked.timeframe
        RETURNING r.*
    )

    SELECT
        c.symbol_id,
        s.ticker::text,
        c.timeframe,
        c.provider,
        c.session_date,
        ms.premarket_open,
        ms.after_hours_close,
        c.targets,
        c.lease_id
    FROM claimed AS c
    INNER JOIN pgbars.symbols AS s ON c.symbol_id = s.id
    INNER JOIN pgbars.market_sessions AS ms ON c.session_date = ms.session_date
    ORDER BY s.ticker, c.timeframe;
END;
$$;

COMMENT ON FUNCTION pgbars.claim_live_refreshes(text, text[], integer, interval, text[]) IS
'While a session trades: leases up to p_limit due live refreshes (live_plan rows of p_providers, '
'not refreshed within live_settings.refresh_every, not found without data this session). '
'Returns the symbol, the timeframe to fetch, the session''s extended hours and the timeframes to store.';
