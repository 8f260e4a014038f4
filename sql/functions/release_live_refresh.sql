-- End a live refresh's lease without bars: a failure, a 429, a refused credential, a stop.
-- (Before migration 0017 it had no p_failure.)
DROP FUNCTION IF EXISTS pgbars.release_live_refresh(uuid, text, uuid, text);

CREATE OR REPLACE FUNCTION pgbars.release_live_refresh(
    p_symbol_id uuid,
    p_timeframe text,
    p_lease_id uuid,
    p_error text DEFAULT NULL,
    p_failure boolean DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
p_error is kept in last_error with secrets redacted. p_failure says whether
the refresh failed (default: when there is an error). Released without a
failure (a 429, which pauses the provider instead; a stop; a refused
credential or an unreachable provider, which settle_lease handles by
provider) it is due again at once. A failure is counted in failures (in a
row), and the refresh is due again at retry_at: 5 s after the first,
doubling with each (jittered +/-25%, _retry_backoff), never later than
refresh_every from now, so a failing symbol is neither asked in a loop nor
left behind the others' cadence; and never sooner than 1 s (refresh_every
may be 0). A stored refresh resets both
(_complete_live_refresh). A lease that is no longer held changes nothing.
*/
DECLARE
    v_failure boolean := coalesce(p_failure, p_error IS NOT NULL);
BEGIN
    UPDATE pgbars.live_refreshes AS r
    SET
        last_error = pgbars._redact_secrets(p_error),
        failures = r.failures + CASE WHEN v_failure THEN 1 ELSE 0 END,
        retry_at = CASE
            WHEN v_failure
                THEN now() + greatest(
                    interval '1 second',
                    least(cfg.refresh_every, pgbars._retry_backoff(r.failures + 1, interval '5 seconds'))
                )
        END,
        lease_id = NULL,
        lease_expires_at = NULL
    FROM pgbars.live_settings AS cfg
    WHERE r.symbol_id = p_symbol_id AND r.timeframe = p_timeframe AND r.lease_id = p_lease_id;
END;
$$;

COMMENT ON FUNCTION pgbars.release_live_refresh(uuid, text, uuid, text, boolean) IS
'Ends a live refresh''s lease without storing bars, recording p_error (redacted). A failure (p_failure, '
'default: an error given) is due again after 5 s doubling per failure in a row (at most refresh_every, '
'at least 1 s); '
'otherwise it is due again at once.';
