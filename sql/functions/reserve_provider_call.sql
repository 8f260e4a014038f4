-- Reserve the next start slot for a call to a provider, under its shared rate limit.
CREATE OR REPLACE FUNCTION pgbars.reserve_provider_call(
    p_provider text,
    p_worker text,
    p_chunk_id bigint DEFAULT NULL,
    p_not_after timestamptz DEFAULT NULL
)
RETURNS TABLE (call_id bigint, starts_at timestamptz, wait_seconds double precision)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
Reservations of one provider are serialised on its providers row (FOR NO
KEY UPDATE, which does not block the foreign-key checks of bar writes) and
handed out in time order. A new call may start no earlier than
  now, the provider's pause, the latest reservation, and
  the calls_per_window-th latest reservation + window_length + window_margin,
so no rolling window ever holds more than calls_per_window starts, across
all workers, processes and machines. The worker sleeps wait_seconds and
then calls; it does not poll. If the slot would start after p_not_after
(the worker's budget) nothing is reserved and call_id is NULL.
*/
DECLARE
    v_provider pgbars.providers%ROWTYPE;
    v_now timestamptz;
    v_latest timestamptz;
    v_nth_latest timestamptz;
    v_start timestamptz;
    v_call_id bigint;
BEGIN
    SELECT * INTO v_provider
    FROM pgbars.providers AS p
    WHERE p.name = p_provider
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown provider %', quote_literal(p_provider) USING ERRCODE = '22023';
    END IF;
    IF NOT v_provider.enabled THEN
        RAISE EXCEPTION 'provider % is disabled', p_provider USING ERRCODE = '55000';
    END IF;
    -- clock_timestamp, not now(): the lock wait above may have taken a while
    v_now := clock_timestamp();

    SELECT max(c.starts_at) INTO v_latest
    FROM pgbars.provider_calls AS c
    WHERE c.provider = p_provider AND c.status <> 'cancelled';

    SELECT c.starts_at INTO v_nth_latest
    FROM pgbars.provider_calls AS c
    WHERE c.provider = p_provider AND c.status <> 'cancelled'
    ORDER BY c.starts_at DESC
    OFFSET v_provider.calls_per_window - 1
    LIMIT 1;

    v_start := greatest(
        v_now,
        v_provider.paused_until,
        v_latest,
        v_nth_latest + v_provider.window_length + v_provider.window_margin
    );

    IF v_start > p_not_after THEN
        RETURN QUERY SELECT NULL::bigint, v_start, extract(EPOCH FROM v_start - v_now)::double precision;
        RETURN;
    END IF;

    INSERT INTO pgbars.provider_calls (provider, worker, chunk_id, starts_at)
    VALUES (p_provider, p_worker, p_chunk_id, v_start)
    RETURNING id INTO v_call_id;

    RETURN QUERY SELECT v_call_id, v_start, extract(EPOCH FROM v_start - v_now)::double precision;
END;
$$;

COMMENT ON FUNCTION pgbars.reserve_provider_call(text, text, bigint, timestamptz) IS
'Reserves the earliest start for one call to p_provider such that at most calls_per_window calls '
'start in any rolling window_length, across all workers. Returns the call id, its start time and '
'the seconds to wait; call_id is NULL (and nothing is reserved) when the start would be after p_not_after.';
