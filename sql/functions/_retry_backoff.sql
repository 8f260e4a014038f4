-- How long a chunk waits before its next attempt.
CREATE OR REPLACE FUNCTION pgbars._retry_backoff(p_attempts integer, p_base interval)
RETURNS interval
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pgbars
AS $$
    /*
    p_base (the provider's retry_backoff, one minute by default) after the
    first failure, doubling with each attempt (capped at an hour), with
    +/-25% jitter so chunks that failed together (a provider outage) do not
    all come back in the same second.
    */
    SELECT
        least(interval '1 hour', p_base * power(2, least(greatest(p_attempts, 1) - 1, 30)))
        * (0.75 + random() * 0.5);
$$;

COMMENT ON FUNCTION pgbars._retry_backoff(integer, interval) IS
'Backoff before the next attempt: p_base (providers.retry_backoff) doubling per attempt (max 1 h), '
'jittered by +/-25%.';
