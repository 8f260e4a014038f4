-- End a live refresh's lease without bars: a failure, a 429, a refused credential, a stop.
CREATE OR REPLACE FUNCTION pgbars.release_live_refresh(
    p_symbol_id uuid,
    p_timeframe text,
    p_lease_id uuid,
    p_error text DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The refresh is due again at once (the next claim takes it). p_error is kept
in last_error with secrets redacted (NULL for a 429 or a stop, which are no
failure of the refresh). A lease that is no longer held changes nothing.
*/
BEGIN
    UPDATE pgbars.live_refreshes AS r
    SET
        last_error = pgbars._redact_secrets(p_error),
        lease_id = NULL,
        lease_expires_at = NULL
    WHERE r.symbol_id = p_symbol_id AND r.timeframe = p_timeframe AND r.lease_id = p_lease_id;
END;
$$;

COMMENT ON FUNCTION pgbars.release_live_refresh(uuid, text, uuid, text) IS
'Ends a live refresh''s lease without storing bars, recording p_error (redacted); it is due again at once.';
