-- End a live refresh's lease without bars: a failure, a 429, a stop, or no data.
CREATE OR REPLACE FUNCTION pgbars.release_live_refresh(
    p_symbol_id uuid,
    p_timeframe text,
    p_lease_id uuid,
    p_error text DEFAULT NULL,
    p_no_data boolean DEFAULT FALSE
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The refresh becomes due again at once (the next run retries it), unless
p_no_data: the provider said it does not serve the symbol (unknown ticker),
so it is not asked again this session. p_error is kept in last_error with
secrets redacted. A lease that is no longer held changes nothing.
*/
BEGIN
    UPDATE pgbars.live_refreshes AS r
    SET
        last_error = pgbars._redact_secrets(p_error),
        no_data = CASE WHEN p_no_data THEN coalesce(pgbars._redact_secrets(p_error), 'no data') END,
        lease_id = NULL,
        lease_expires_at = NULL
    WHERE r.symbol_id = p_symbol_id AND r.timeframe = p_timeframe AND r.lease_id = p_lease_id;
END;
$$;

COMMENT ON FUNCTION pgbars.release_live_refresh(uuid, text, uuid, text, boolean) IS
'Ends a live refresh''s lease without storing bars, recording p_error (redacted); with p_no_data the '
'symbol is not refreshed again this session.';
