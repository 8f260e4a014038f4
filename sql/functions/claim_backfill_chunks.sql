-- Claim due chunks for the given providers, with a lease; each claim is an attempt.
-- The signature before p_tickers existed; CREATE OR REPLACE would add an overload.
DROP FUNCTION IF EXISTS pgbars.claim_backfill_chunks(text, text[], integer, interval);

CREATE OR REPLACE FUNCTION pgbars.claim_backfill_chunks(
    p_worker text,
    p_providers text[],
    p_limit integer DEFAULT 1,
    p_lease interval DEFAULT '5 minutes',
    p_tickers text[] DEFAULT NULL
)
RETURNS TABLE (
    chunk_id bigint,
    lease_id uuid,
    job_id bigint,
    symbol_id uuid,
    ticker text,
    timeframe text,
    provider text,
    first_session date,
    last_session date,
    session_count integer,
    range_start timestamptz,
    range_end timestamptz,
    attempt integer,
    lease_expires_at timestamptz
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
Order: round-robin across jobs, newest sessions first within a job. A
job's place in the round is its chunk's rank within the job plus the chunks
it already has leased, so successive one-chunk claims rotate too; ties go
to the job claimed least recently, then the older job. So one ticker with
500 chunks cannot starve the others, and charts get the recent months first.
p_tickers (NULL: all) limits the claim to those symbols, for a run by hand.
*/
BEGIN
    PERFORM pgbars._check_claim_arguments(p_worker, p_limit, p_lease);

    -- A lease that expired on the last allowed attempt: the chunk keeps
    -- stopping its workers, so it fails instead of being handed out again.
    UPDATE pgbars.backfill_chunks AS c
    SET
        status = 'failed',
        lease_id = NULL,
        lease_expires_at = NULL,
        completed_at = now(),
        last_error = format(
            'lease of worker %s expired on attempt %s of %s without an outcome',
            c.claimed_by, c.attempts, c.max_attempts
        )
    WHERE
        c.status = 'running'
        AND c.lease_expires_at <= now()
        AND c.attempts >= c.max_attempts;

    RETURN QUERY
    WITH
    -- due chunks of providers this worker may use that are not paused
    candidates AS (
        SELECT
            c.id,
            c.job_id,
            row_number() OVER (PARTITION BY c.job_id ORDER BY c.last_session DESC) AS job_rank
        FROM pgbars.backfill_chunks AS c
        INNER JOIN pgbars.providers AS p ON c.provider = p.name
        WHERE
            c.provider = ANY(p_providers)
            AND (
                p_tickers IS NULL
                OR c.job_id IN (SELECT pgbars._ticker_jobs(p_tickers))
            )
            AND p.enabled
            AND (p.paused_until IS NULL OR p.paused_until <= now())
            AND (
                (c.status = 'pending' AND c.next_attempt_at <= now())
                OR (c.status = 'running' AND c.lease_expires_at <= now())
            )
    ),

    -- what each of those jobs already has in flight, and when it last got a turn
    job_load AS (
        SELECT
            c.job_id,
            count(*) FILTER (WHERE c.status = 'running' AND c.lease_expires_at > now()) AS leased,
            max(c.claimed_at) AS last_claimed_at
        FROM pgbars.backfill_chunks AS c
        WHERE c.job_id IN (SELECT k.job_id FROM candidates AS k)
        GROUP BY c.job_id
    ),

    -- lock the first p_limit of them; the due test is repeated here so that
    -- a chunk another worker claimed meanwhile is re-checked on its new row
    picked AS (
        SELECT c.id
        FROM pgbars.backfill_chunks AS c
        INNER JOIN candidates AS k ON c.id = k.id
        INNER JOIN job_load AS l ON k.job_id = l.job_id
        WHERE
            (c.status = 'pending' AND c.next_attempt_at <= now())
            OR (c.status = 'running' AND c.lease_expires_at <= now())
        ORDER BY k.job_rank + l.leased, l.last_claimed_at ASC NULLS FIRST, k.job_id
        LIMIT p_limit
        FOR UPDATE OF c SKIP LOCKED
    ),

    -- take the lease and count the attempt
    claimed AS (
        UPDATE pgbars.backfill_chunks AS c
        SET
            status = 'running',
            lease_id = gen_random_uuid(),
            claimed_by = p_worker,
            claimed_at = now(),
            lease_expires_at = now() + p_lease,
            attempts = c.attempts + 1
        FROM picked
        WHERE c.id = picked.id
        RETURNING c.*
    )

    SELECT
        cl.id,
        cl.lease_id,
        cl.job_id,
        j.symbol_id,
        s.ticker::text,
        j.timeframe,
        cl.provider,
        cl.first_session,
        cl.last_session,
        cl.session_count,
        first_day.premarket_open,
        last_day.after_hours_close,
        cl.attempts,
        cl.lease_expires_at
    FROM claimed AS cl
    INNER JOIN pgbars.backfill_jobs AS j ON cl.job_id = j.id
    INNER JOIN pgbars.symbols AS s ON j.symbol_id = s.id
    INNER JOIN pgbars.market_sessions AS first_day ON cl.first_session = first_day.session_date
    INNER JOIN pgbars.market_sessions AS last_day ON cl.last_session = last_day.session_date
    ORDER BY cl.last_session DESC;
END;
$$;

COMMENT ON FUNCTION pgbars.claim_backfill_chunks(text, text[], integer, interval, text[]) IS
'Claims up to p_limit due chunks (FOR UPDATE SKIP LOCKED) of the given, unpaused providers '
'(and of p_tickers, when given): '
'round-robin across jobs (also across successive calls), newest first within a job. '
'Takes a lease and counts an attempt; '
'expired leases are claimable again, and a chunk whose last allowed lease expired is failed.';
