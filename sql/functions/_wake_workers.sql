-- Tell every running `pgbars serve` that work may be claimable now: NOTIFY pgbars_wake.
CREATE OR REPLACE FUNCTION pgbars._wake_workers(p_reason text)
RETURNS void
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    The one sender on channel pgbars_wake (docs/worker.md, "pgbars serve").
    Called when chunks are inserted (seeding from the watchlist trigger,
    request_backfill, roll-forward, repair) and when a chunk is given back
    claimable at once. Delivered at commit, to every replica listening:
    each looks for claimable work, and the claim gives each chunk to one.
    Postgres folds identical notifications of one transaction into one, so
    adding 500 tickers in one statement wakes a replica once. A replica
    that was not listening (starting, reconnecting) looks for work first
    thing anyway. The payload is the reason, for logs only.
    */
    SELECT pg_notify('pgbars_wake', p_reason);
$$;

COMMENT ON FUNCTION pgbars._wake_workers(text) IS
'NOTIFY pgbars_wake (delivered at commit): running pgbars serve replicas look for claimable work.';
