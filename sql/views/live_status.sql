-- Today's bars per watchlist symbol: when each live refresh last ran and how it went.
CREATE OR REPLACE VIEW pgbars.live_status AS
/*
One row per live_refreshes row (symbol and fetched live timeframe) that a
run has planned, with the ticker. leased: a worker holds it now.
failures: failed refreshes in a row; retry_at: when a failed one is due again.
*/
SELECT
    s.ticker::text AS symbol,
    r.timeframe,
    r.targets,
    r.provider,
    r.session_date,
    r.refreshed_at,
    r.bars_written,
    r.bars_rejected,
    r.requests_used,
    r.no_data,
    r.last_error,
    coalesce(r.lease_expires_at > now(), FALSE) AS leased,
    r.claimed_by,
    r.failures,
    r.retry_at
FROM pgbars.live_refreshes AS r
INNER JOIN pgbars.symbols AS s ON r.symbol_id = s.id;

COMMENT ON VIEW pgbars.live_status IS
'Per symbol and fetched live timeframe: session, last refresh, bars, no_data reason, last error, lease.';
