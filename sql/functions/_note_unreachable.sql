-- A provider's circuit breaker: one more call that got no HTTP answer at all.
CREATE OR REPLACE FUNCTION pgbars._note_unreachable(p_provider text)
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pgbars
AS $$
/*
Counts the provider's consecutive calls without an answer
(providers.unreachable_streak; complete_provider_call resets it on any
answered call). From the third in a row the breaker opens: the provider is
paused for every worker (pause_provider) for 30 seconds, doubling with each
further failure, at most 15 minutes. Returns the pause's end, or NULL while
the breaker is still closed. Called by settle_lease (kind unreachable).
*/
DECLARE
    v_streak integer;
BEGIN
    UPDATE pgbars.providers AS p
    SET unreachable_streak = p.unreachable_streak + 1
    WHERE p.name = p_provider
    RETURNING p.unreachable_streak INTO v_streak;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown provider %', quote_literal(p_provider) USING ERRCODE = '22023';
    END IF;
    IF v_streak < 3 THEN
        RETURN NULL;
    END IF;
    RETURN pgbars.pause_provider(
        p_provider,
        now() + least(interval '15 minutes', interval '30 seconds' * power(2, least(v_streak - 3, 10)))
    );
END;
$$;

COMMENT ON FUNCTION pgbars._note_unreachable(text) IS
'Circuit breaker: counts a call without any HTTP answer; from the third in a row pauses the provider '
'for every worker, 30 s doubling per further failure, at most 15 min. Returns the pause end or NULL.';
