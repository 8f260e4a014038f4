-- Record the outcome of a reserved provider call in the ledger.
CREATE OR REPLACE FUNCTION pgbars.complete_provider_call(
    p_call_id bigint,
    p_http_status integer,
    p_bars integer DEFAULT NULL,
    p_duration_ms integer DEFAULT NULL,
    p_error text DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The ledger is also the audit log: status, bars and latency of every call.
A call the provider answered (any HTTP status, a 429 or a 500 included)
proves it reachable: its circuit breaker's count of consecutive calls
without an answer (providers.unreachable_streak, see settle_lease) starts
again from 0. The row is only written when the count is not 0 already.
*/
DECLARE
    v_provider text;
BEGIN
    UPDATE pgbars.provider_calls AS c
    SET
        status = 'completed',
        finished_at = clock_timestamp(),
        http_status = p_http_status,
        bars = p_bars,
        duration_ms = p_duration_ms,
        error = pgbars._redact_secrets(p_error)
    WHERE c.id = p_call_id AND c.status = 'reserved'
    RETURNING c.provider INTO v_provider;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'provider call % is not an open reservation', p_call_id
            USING ERRCODE = '55000';
    END IF;
    IF p_http_status IS NOT NULL THEN
        UPDATE pgbars.providers AS p
        SET unreachable_streak = 0
        WHERE p.name = v_provider AND p.unreachable_streak <> 0;
    END IF;
END;
$$;

COMMENT ON FUNCTION pgbars.complete_provider_call(bigint, integer, integer, integer, text) IS
'Completes a reserved provider call with its HTTP status (NULL if no response), bars, duration and error; '
'an answered call resets the provider''s count of unreachable calls.';
