-- Recompute the given backfill lanes (job, provider) from their chunks (the trigger on backfill_chunks calls it).
CREATE OR REPLACE FUNCTION pgbars._refresh_backfill_lanes(p_jobs bigint[], p_providers text[])
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    The lanes are the pairs (p_jobs[i], p_providers[i]). A lane is one row
    per (job, provider) with chunks: its counters and times, each an
    aggregate of the lane's chunks, read through the (job_id, ...) index: a
    job has tens of chunks, so this costs the same at any queue depth. A lane
    whose last chunk left (deleted, rerouted) is deleted. A lane that did not
    change is not written. Only the given lanes are touched (not the job's
    other providers'), so a statement locks no lane but those of the chunks
    it changed: a claim holds its lanes' locks, and two claims must not wait
    for each other's.

    running counts leases whether or not they expired (an expired one is
    claimable again: due_at covers it); backfill_progress tells them apart
    with lease_expires_at, the earliest expiry. due_at is when a chunk of the
    lane can next be claimed: the earliest next_attempt_at of a pending
    chunk or lease_expires_at of a running one; NULL when none is queued.
    */
    WITH
    fresh AS (
        SELECT
            k.job_id,
            k.provider,
            a.*
        FROM unnest(p_jobs, p_providers) AS k (job_id, provider)
        -- per lane, its chunks by the (job_id, ...) index, whatever the statistics say
        CROSS JOIN LATERAL (
            SELECT
                count(*)::integer AS chunks,
                (count(*) FILTER (WHERE c.status = 'done'))::integer AS done,
                (count(*) FILTER (WHERE c.status = 'failed'))::integer AS failed,
                (count(*) FILTER (WHERE c.status = 'running'))::integer AS running,
                sum(c.session_count) AS sessions_total,
                coalesce(sum(c.session_count) FILTER (WHERE c.status = 'done'), 0) AS sessions_done,
                coalesce(sum(c.bars_written), 0) AS bars_written,
                coalesce(sum(c.bars_rejected), 0) AS bars_rejected,
                (count(*) FILTER (WHERE c.status = 'done' AND c.bars_written = 0))::integer AS empty_chunks,
                coalesce(sum(c.requests_used) FILTER (WHERE c.status = 'done'), 0) AS requests_done,
                (count(c.requests_used) FILTER (WHERE c.status = 'done'))::integer AS done_with_requests,
                min(c.first_session) AS first_session,
                max(c.last_session) AS last_session,
                min(c.next_attempt_at) FILTER (WHERE c.status = 'pending') AS next_attempt_at,
                max(c.next_attempt_at) FILTER (WHERE c.status = 'pending') AS last_due_at,
                min(c.lease_expires_at) FILTER (WHERE c.status = 'running') AS lease_expires_at,
                max(c.claimed_at) AS last_claimed_at,
                max(c.completed_at) AS last_completed_at
            FROM pgbars.backfill_chunks AS c
            WHERE c.job_id = k.job_id AND c.provider = k.provider
        ) AS a
        WHERE a.chunks > 0
    ),

    gone AS (
        DELETE FROM pgbars.backfill_lanes AS l
        WHERE
            l.job_id = ANY(p_jobs)
            AND (l.job_id, l.provider) IN (SELECT * FROM unnest(p_jobs, p_providers))
            AND NOT EXISTS (
                SELECT FROM fresh AS f
                WHERE f.job_id = l.job_id AND f.provider = l.provider
            )
    )

    INSERT INTO pgbars.backfill_lanes AS l (
        job_id, provider, chunks, done, failed, running, sessions_total, sessions_done,
        bars_written, bars_rejected, empty_chunks, requests_done, done_with_requests, first_session, last_session,
        next_attempt_at, last_due_at, lease_expires_at, last_claimed_at, last_completed_at, due_at
    )
    SELECT
        f.job_id,
        f.provider,
        f.chunks,
        f.done,
        f.failed,
        f.running,
        f.sessions_total,
        f.sessions_done,
        f.bars_written,
        f.bars_rejected,
        f.empty_chunks,
        f.requests_done,
        f.done_with_requests,
        f.first_session,
        f.last_session,
        f.next_attempt_at,
        f.last_due_at,
        f.lease_expires_at,
        f.last_claimed_at,
        f.last_completed_at,
        least(f.next_attempt_at, f.lease_expires_at)
    FROM fresh AS f
    -- the job may be going (a cascade from symbols or backfill_jobs): no lane for it
    WHERE EXISTS (SELECT FROM pgbars.backfill_jobs AS j WHERE j.id = f.job_id)
    ON CONFLICT (job_id, provider) DO UPDATE SET
        chunks = excluded.chunks,
        done = excluded.done,
        failed = excluded.failed,
        running = excluded.running,
        sessions_total = excluded.sessions_total,
        sessions_done = excluded.sessions_done,
        bars_written = excluded.bars_written,
        bars_rejected = excluded.bars_rejected,
        empty_chunks = excluded.empty_chunks,
        requests_done = excluded.requests_done,
        done_with_requests = excluded.done_with_requests,
        first_session = excluded.first_session,
        last_session = excluded.last_session,
        next_attempt_at = excluded.next_attempt_at,
        last_due_at = excluded.last_due_at,
        lease_expires_at = excluded.lease_expires_at,
        last_claimed_at = excluded.last_claimed_at,
        last_completed_at = excluded.last_completed_at,
        due_at = excluded.due_at
    WHERE (l.*) IS DISTINCT FROM (excluded.*);
$$;

COMMENT ON FUNCTION pgbars._refresh_backfill_lanes(bigint[], text[]) IS
'Recomputes the backfill_lanes rows (p_jobs[i], p_providers[i]) from their chunks.';
