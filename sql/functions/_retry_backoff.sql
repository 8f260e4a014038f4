-- How long a chunk waits before its next attempt.
CREATE OR REPLACE FUNCTION pgbars._retry_backoff(p_attempts integer)
RETURNS interval
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pgbars
AS $$
    /*
    One minute after the first failure, doubling with each attempt (capped at
    an hour), with +/-25% jitter so chunks that failed together (a provider
    outage) do not all come back in the same second.
    */
    SELECT make_interval(
        secs => least(3600, 60 * power(2, greatest(p_attempts, 1) - 1)) * (0.75 + random() * 0.5)
    );
$$;

COMMENT ON FUNCTION pgbars._retry_backoff(integer) IS
'Backoff before the next attempt: 60 s doubling per attempt (max 1 h), jittered by +/-25%.';
