-- Record a failed attempt: retry later with backoff, or fail for good.
CREATE OR REPLACE FUNCTION pgbars.fail_backfill_chunk(
    p_chunk_id bigint,
    p_lease_id uuid,
    p_error text,
    p_retryable boolean DEFAULT TRUE
)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
A retryable failure goes back to pending after _retry_backoff(attempts,
the provider's retry_backoff); after max_attempts (3), or at once when not
retryable, the chunk is failed.
The error is kept (secrets masked) either way. Returns the new status.
*/
DECLARE
    v_status text;
BEGIN
    UPDATE pgbars.backfill_chunks AS c
    SET
        status = CASE
            WHEN NOT p_retryable OR c.attempts >= c.max_attempts THEN 'failed'
            ELSE 'pending'
        END,
        next_attempt_at = CASE
            WHEN NOT p_retryable OR c.attempts >= c.max_attempts THEN c.next_attempt_at
            ELSE now() + pgbars._retry_backoff(
                c.attempts,
                (SELECT p.retry_backoff FROM pgbars.providers AS p WHERE p.name = c.provider)
            )
        END,
        completed_at = CASE
            WHEN NOT p_retryable OR c.attempts >= c.max_attempts THEN now()
        END,
        last_error = pgbars._redact_secrets(coalesce(p_error, 'unknown error')),
        lease_id = NULL,
        lease_expires_at = NULL
    WHERE
        c.id = p_chunk_id
        AND c.lease_id = p_lease_id
        AND c.status = 'running'
    RETURNING c.status INTO v_status;
    IF NOT FOUND THEN
        PERFORM pgbars._raise_lease_lost(p_chunk_id);
    END IF;
    RETURN v_status;
END;
$$;

COMMENT ON FUNCTION pgbars.fail_backfill_chunk(bigint, uuid, text, boolean) IS
'Records a failed attempt of a leased chunk: pending again after a growing, jittered backoff '
'(from its provider''s retry_backoff), '
'or failed after max_attempts or when not retryable. Returns the new status; raises PB001 '
'when the lease is no longer this caller''s.';
