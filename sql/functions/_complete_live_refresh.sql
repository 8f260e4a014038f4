-- Record a stored live refresh and end its lease.
CREATE OR REPLACE FUNCTION pgbars._complete_live_refresh(
    p_symbol_id uuid,
    p_timeframe text,
    p_lease_id uuid,
    p_bars_written integer,
    p_bars_rejected integer,
    p_requests integer,
    p_no_data text
)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /* For store_live_bars, which runs as the worker (no UPDATE on live_refreshes). */
    UPDATE pgbars.live_refreshes AS r
    SET
        refreshed_at = now(),
        bars_written = p_bars_written,
        bars_rejected = p_bars_rejected,
        requests_used = p_requests,
        no_data = p_no_data,
        last_error = NULL,
        failures = 0,
        retry_at = NULL,
        lease_id = NULL,
        lease_expires_at = NULL
    WHERE r.symbol_id = p_symbol_id AND r.timeframe = p_timeframe AND r.lease_id = p_lease_id;
$$;

COMMENT ON FUNCTION pgbars._complete_live_refresh(uuid, text, uuid, integer, integer, integer, text) IS
'Marks the leased live refresh refreshed now with its counts and no_data reason, and ends the lease.';
