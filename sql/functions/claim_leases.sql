-- Claim leased work of any kind (action refreshes, live refreshes, history chunks), with what its fetch needs.
CREATE OR REPLACE FUNCTION pgbars.claim_leases(
    p_worker text,
    p_providers text[],
    p_limit integer DEFAULT 1,
    p_lease interval DEFAULT '5 minutes',
    p_tickers text[] DEFAULT NULL,
    p_kinds text[] DEFAULT '{history,live}'
)
RETURNS TABLE (
    kind text,
    lease_id uuid,
    chunk_id bigint,
    job_id bigint,
    symbol_id uuid,
    ticker text,
    timeframe text,
    provider text,
    targets text[],
    first_session date,
    last_session date,
    session_count integer,
    range_start timestamptz,
    range_end timestamptz,
    attempt integer,
    lease_expires_at timestamptz,
    sessions jsonb
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The worker's one claim, of the kinds in p_kinds: up to p_limit 'live'
leases (today's bars of a watchlist symbol, claim_live_refreshes), and up
to p_limit 'actions' and 'history' leases together, action refreshes first
(a symbol's splits and dividends from one source, claim_action_refreshes:
known before its bars arrive, they convert a split-adjusted provider's bars
as they are stored), then backfill chunks (claim_backfill_chunks:
round-robin across jobs, newest sessions first), under those functions' rules. A lease carries
what its fetch needs: the ticker, timeframe, provider, the time range, the
timeframes stored from the answer (targets: the chunk's own timeframe, or a
live refresh's fetched and rolled-up ones), and the XNYS sessions from
market_sessions around it (a week either side, for providers whose daily
timestamps need mapping), so the database is the worker's only calendar.
sessions: [[session_date, premarket_open, regular_open, regular_close,
after_hours_close], ...], instants as Unix seconds. attempt is NULL for a
live refresh (refreshes spend no attempts). An action refresh carries the
ex-dates it asks for as first_session..last_session, and no timeframe,
range or sessions. Settle a lease that ends without a result with
settle_lease, store one with store_lease.
*/
DECLARE
    v_left integer := p_limit;
    v_claimed integer;
BEGIN
    IF p_kinds IS NULL OR NOT p_kinds <@ ARRAY['history', 'live', 'actions'] THEN
        RAISE EXCEPTION 'kinds must be among history, live and actions, not %', p_kinds USING ERRCODE = '22023';
    END IF;
    IF 'actions' = ANY(p_kinds) THEN
        RETURN QUERY
        SELECT
            'actions'::text,
            a.lease_id,
            NULL::bigint,
            NULL::bigint,
            a.symbol_id,
            a.ticker,
            NULL::text,
            a.provider,
            NULL::text [],
            a.asked_from,
            a.asked_to,
            NULL::integer,
            NULL::timestamptz,
            NULL::timestamptz,
            a.attempt,
            a.lease_expires_at,
            NULL::jsonb
        FROM pgbars.claim_action_refreshes(p_worker, p_providers, p_limit, p_lease, p_tickers) AS a;
        GET DIAGNOSTICS v_claimed = ROW_COUNT;
        v_left := p_limit - v_claimed;
    END IF;
    IF 'live' = ANY(p_kinds) THEN
        RETURN QUERY
        SELECT
            'live'::text,
            r.lease_id,
            NULL::bigint,
            NULL::bigint,
            r.symbol_id,
            r.ticker,
            r.timeframe,
            r.provider,
            r.targets,
            r.session_date,
            r.session_date,
            1,
            r.range_start,
            r.range_end,
            NULL::integer,
            now() + p_lease,  -- as claim_live_refreshes sets it
            pgbars._session_windows(r.session_date, r.session_date)
        FROM pgbars.claim_live_refreshes(p_worker, p_providers, p_limit, p_lease, p_tickers) AS r;
    END IF;
    IF 'history' = ANY(p_kinds) AND v_left > 0 THEN
        RETURN QUERY
        SELECT
            'history'::text,
            c.lease_id,
            c.chunk_id,
            c.job_id,
            c.symbol_id,
            c.ticker,
            c.timeframe,
            c.provider,
            ARRAY[c.timeframe],
            c.first_session,
            c.last_session,
            c.session_count,
            c.range_start,
            c.range_end,
            c.attempt,
            c.lease_expires_at,
            pgbars._session_windows(c.first_session, c.last_session)
        FROM pgbars.claim_backfill_chunks(p_worker, p_providers, v_left, p_lease, p_tickers) AS c;
    END IF;
END;
$$;

COMMENT ON FUNCTION pgbars.claim_leases(text, text[], integer, interval, text[], text[]) IS
'Claims up to p_limit live refreshes, and up to p_limit action refreshes and history chunks together '
'(action refreshes first), each with what its fetch needs, XNYS session windows included.';
