-- Lock a live refresh for its store, checking the caller's lease.
CREATE OR REPLACE FUNCTION pgbars._lock_live_refresh(
    p_symbol_id uuid,
    p_timeframe text,
    p_lease_id uuid
)
RETURNS TABLE (
    provider text,
    targets text[],
    session_date date,
    premarket_open timestamptz,
    regular_open timestamptz,
    after_hours_close timestamptz
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
store_live_bars runs as the worker, which may not update live_refreshes
itself; this takes the row lock for it (held until the caller's transaction
ends), so a claim cannot hand the refresh to another worker while its bars
are being written. The symbol is locked first (FOR KEY SHARE, as the bars'
reference check will), then the refresh: the order a symbol's DELETE takes
them in (the symbol, then its cascade), so the two cannot deadlock. Raises
PB001 when the lease is not the caller's: the lease expired and another
worker claimed the refresh, or the symbol was deleted.
*/
BEGIN
    PERFORM FROM pgbars.symbols AS s WHERE s.id = p_symbol_id FOR KEY SHARE;
    RETURN QUERY
    SELECT
        r.provider,
        r.targets,
        r.session_date,
        ms.premarket_open,
        ms.regular_open,
        ms.after_hours_close
    FROM pgbars.live_refreshes AS r
    INNER JOIN pgbars.market_sessions AS ms ON r.session_date = ms.session_date
    WHERE r.symbol_id = p_symbol_id AND r.timeframe = p_timeframe AND r.lease_id = p_lease_id
    FOR UPDATE OF r;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'live refresh of % for symbol % is no longer leased to this worker: not stored',
            p_timeframe, p_symbol_id
            USING ERRCODE = 'PB001',
            HINT = 'The lease expired and another worker claimed the refresh.';
    END IF;
END;
$$;

COMMENT ON FUNCTION pgbars._lock_live_refresh(uuid, text, uuid) IS
'Locks the leased live refresh for store_live_bars and returns its provider, targets and session hours; '
'raises PB001 when p_lease_id is not its lease.';
