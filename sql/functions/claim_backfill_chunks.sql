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
Order: round-robin across jobs, newest sessions first within a job. The
queue is backfill_lanes, one row per (job, provider) kept from the chunks by
a trigger (docs/database.md, "Claiming"): each chunk is taken by
walking the claim index of every usable provider's lanes in the order
(running, last_claimed_at NULLS FIRST, job_id) and taking the first due lane's
newest due chunk. A lane's place is thus the chunks it already has leased,
then how long ago it was last claimed (never first), then the older job,
per lane (a job with chunks at two providers has two places): one
ticker with 500 chunks cannot starve the others, successive one-chunk claims
rotate, and charts get the recent months first. A claim of ten among fewer
due lanes than that takes a second chunk of each, in a second round. Each
step is an index probe: the cost does not grow with the queue. The leases
are taken by one UPDATE at the end, so the trigger refreshes the claimed
lanes once.

A picked lane's job and its chunk are locked with SKIP LOCKED, so
concurrent claimers never wait for each other and never get the same
chunk; a lane whose job another transaction holds (a claim, a store of one
of its chunks, a seeder planning it) is passed over for this call, as is
a lane whose due chunks are all locked.
Leases that expired are taken first, oldest first: the work of a worker
that stopped is not left behind the queue. p_tickers (NULL: all) limits
the claim to those symbols, for a run by hand.
*/
DECLARE
    v_providers text[];
    v_jobs bigint[];
    v_passed text[] := '{}';
    v_lane record;
    v_expired record;
    v_chunk bigint;
    v_found integer;
    v_claimed bigint[] := '{}';
BEGIN
    PERFORM pgbars._check_claim_arguments(p_worker, p_limit, p_lease);
    IF p_tickers IS NOT NULL THEN
        v_jobs := ARRAY(SELECT pgbars._ticker_jobs(p_tickers));  -- 22023 for an invalid ticker
    END IF;

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

    -- the providers this worker may use that are enabled and not paused
    v_providers := ARRAY(
        SELECT p.name
        FROM pgbars.providers AS p
        WHERE
            p.name = ANY(p_providers)
            AND p.enabled
            AND (p.paused_until IS NULL OR p.paused_until <= now())
    );

    -- First, leases that expired (a worker stopped or lost its way): oldest first, through
    -- backfill_chunks_lease_expiry_idx. A lane counts its leases expired or not (running),
    -- so without this step its expired chunks would wait behind every lane with fewer.
    FOR v_expired IN
        SELECT c.id
        FROM pgbars.backfill_chunks AS c
        INNER JOIN pgbars.backfill_jobs AS j ON c.job_id = j.id
        WHERE
            c.status = 'running'
            AND c.lease_expires_at <= now()
            AND c.provider = ANY(v_providers)
            AND (v_jobs IS NULL OR c.job_id = ANY(v_jobs))
        ORDER BY c.lease_expires_at
        LIMIT p_limit
        FOR UPDATE OF c SKIP LOCKED
        FOR NO KEY UPDATE OF j SKIP LOCKED
    LOOP
        v_claimed := v_claimed || v_expired.id;
    END LOOP;

    -- Rounds: each takes the first due lanes in claim order (through each usable
    -- provider's claim index) and one chunk of each, its newest due one. A second
    -- round happens only when the first found fewer lanes than the limit, so
    -- every due lane had its turn: it takes them again, in the same order.
    WHILE cardinality(v_claimed) < p_limit LOOP
        v_found := 0;
        FOR v_lane IN
            SELECT
                l.job_id,
                l.provider
            FROM unnest(v_providers) AS u (provider)
            CROSS JOIN LATERAL (
                -- the lane's job is locked, not the lane: every writer of a lane locks its
                -- job first (_backfill_chunks_changed), so a claim never waits for one
                SELECT
                    n.job_id,
                    n.provider,
                    n.running,
                    n.last_claimed_at
                FROM pgbars.backfill_lanes AS n
                INNER JOIN pgbars.backfill_jobs AS j ON n.job_id = j.id
                WHERE
                    n.provider = u.provider
                    AND n.due_at <= now()
                    AND (v_jobs IS NULL OR n.job_id = ANY(v_jobs))
                    AND NOT (n.job_id::text || '/' || n.provider) = ANY(v_passed)
                ORDER BY n.running, n.last_claimed_at NULLS FIRST, n.job_id
                LIMIT p_limit - cardinality(v_claimed)
                FOR NO KEY UPDATE OF j SKIP LOCKED
            ) AS l
            ORDER BY l.running, l.last_claimed_at NULLS FIRST, l.job_id
            LIMIT p_limit - cardinality(v_claimed)
        LOOP
            v_found := v_found + 1;
            v_chunk := NULL;
            SELECT d.id INTO v_chunk
            FROM pgbars.backfill_chunks AS d
            WHERE
                d.job_id = v_lane.job_id
                AND d.provider = v_lane.provider
                AND d.id <> ALL(v_claimed)
                AND (
                    (d.status = 'pending' AND d.next_attempt_at <= now())
                    OR (d.status = 'running' AND d.lease_expires_at <= now())
                )
            -- backfill_chunks_queue_idx, backwards from the lane's newest queued chunk
            ORDER BY d.last_session DESC
            LIMIT 1
            FOR UPDATE SKIP LOCKED;
            IF v_chunk IS NULL THEN
                v_passed := v_passed || (v_lane.job_id::text || '/' || v_lane.provider);
            ELSE
                v_claimed := v_claimed || v_chunk;
            END IF;
        END LOOP;
        EXIT WHEN v_found = 0;
    END LOOP;

    -- take the leases and count the attempts: one statement, so the lanes are refreshed once
    UPDATE pgbars.backfill_chunks AS c
    SET
        status = 'running',
        lease_id = gen_random_uuid(),
        claimed_by = p_worker,
        claimed_at = now(),
        lease_expires_at = now() + p_lease,
        attempts = c.attempts + 1
    WHERE c.id = ANY(v_claimed);

    RETURN QUERY
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
    FROM pgbars.backfill_chunks AS cl
    INNER JOIN pgbars.backfill_jobs AS j ON cl.job_id = j.id
    INNER JOIN pgbars.symbols AS s ON j.symbol_id = s.id
    INNER JOIN pgbars.market_sessions AS first_day ON cl.first_session = first_day.session_date
    INNER JOIN pgbars.market_sessions AS last_day ON cl.last_session = last_day.session_date
    WHERE cl.id = ANY(v_claimed)
    ORDER BY cl.last_session DESC, cl.job_id, cl.id;
END;
$$;

COMMENT ON FUNCTION pgbars.claim_backfill_chunks(text, text[], integer, interval, text[]) IS
'Claims up to p_limit due chunks (FOR UPDATE SKIP LOCKED) of the given, unpaused providers '
'(and of p_tickers, when given): '
'round-robin across jobs (also across successive calls), newest first within a job, through backfill_lanes. '
'Takes a lease and counts an attempt; '
'expired leases are claimable again, and a chunk whose last allowed lease expired is failed.';
