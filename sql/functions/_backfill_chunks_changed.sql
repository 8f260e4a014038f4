-- The trigger function: the lanes of every job whose chunks a statement inserted, changed or deleted.
CREATE OR REPLACE FUNCTION pgbars._backfill_chunks_changed()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
Once per statement (transition tables): a claim of ten chunks, a seed of a
thousand, a cascade from a deleted symbol each refresh the lanes (job,
provider) of the chunks they touched, once. An insert adds the new chunks
to their lanes; an update or a delete recomputes the lanes from their
chunks (_refresh_backfill_lanes). New chunks wake the running serve
replicas (_wake_workers, at commit).

Every writer of a lane first locks its job's row (FOR NO KEY UPDATE, in id
order: it conflicts with a seeder's FOR UPDATE of the job it plans and with
another lane writer's lock, not with the foreign-key checks of new chunks),
and counts in a later statement: two transactions changing chunks
of one lane take turns, and the second counts with the first's changes
committed, so no change is lost (a count taken before the lock could
overwrite the other's). The claim locks the jobs it picks the same way
(SKIP LOCKED), so it never waits for a lane.
*/
DECLARE
    v_jobs bigint[];
    v_providers text[];
BEGIN
    IF tg_op = 'INSERT' THEN
        PERFORM
        FROM pgbars.backfill_jobs AS j
        WHERE j.id IN (SELECT n.job_id FROM new_chunks AS n)
        ORDER BY j.id
        FOR NO KEY UPDATE OF j;
        -- New chunks only add to their lanes: the lane plus the new chunks' aggregates,
        -- read from the transition table alone (seeding inserts a job's chunks in one
        -- statement; this keeps it from reading them back). least and greatest skip NULLs.
        -- tests/sql/test_backfill_lanes.py checks the lanes against the chunks.
        INSERT INTO pgbars.backfill_lanes AS l (
            job_id, provider, chunks, done, failed, running, sessions_total, sessions_done,
            bars_written, bars_rejected, empty_chunks, requests_done, done_with_requests, first_session,
            last_session, next_attempt_at, last_due_at, lease_expires_at, last_claimed_at,
            last_completed_at, due_at
        )
        SELECT
            n.job_id,
            n.provider,
            count(*)::integer,
            (count(*) FILTER (WHERE n.status = 'done'))::integer,
            (count(*) FILTER (WHERE n.status = 'failed'))::integer,
            (count(*) FILTER (WHERE n.status = 'running'))::integer,
            sum(n.session_count),
            coalesce(sum(n.session_count) FILTER (WHERE n.status = 'done'), 0),
            coalesce(sum(n.bars_written), 0),
            coalesce(sum(n.bars_rejected), 0),
            (count(*) FILTER (WHERE n.status = 'done' AND n.bars_written = 0))::integer,
            coalesce(sum(n.requests_used) FILTER (WHERE n.status = 'done'), 0),
            (count(n.requests_used) FILTER (WHERE n.status = 'done'))::integer,
            min(n.first_session),
            max(n.last_session),
            min(n.next_attempt_at) FILTER (WHERE n.status = 'pending'),
            max(n.next_attempt_at) FILTER (WHERE n.status = 'pending'),
            min(n.lease_expires_at) FILTER (WHERE n.status = 'running'),
            max(n.claimed_at),
            max(n.completed_at),
            least(
                min(n.next_attempt_at) FILTER (WHERE n.status = 'pending'),
                min(n.lease_expires_at) FILTER (WHERE n.status = 'running')
            )
        FROM new_chunks AS n
        GROUP BY n.job_id, n.provider
        ON CONFLICT (job_id, provider) DO UPDATE SET
            chunks = l.chunks + excluded.chunks,
            done = l.done + excluded.done,
            failed = l.failed + excluded.failed,
            running = l.running + excluded.running,
            sessions_total = l.sessions_total + excluded.sessions_total,
            sessions_done = l.sessions_done + excluded.sessions_done,
            bars_written = l.bars_written + excluded.bars_written,
            bars_rejected = l.bars_rejected + excluded.bars_rejected,
            empty_chunks = l.empty_chunks + excluded.empty_chunks,
            requests_done = l.requests_done + excluded.requests_done,
            done_with_requests = l.done_with_requests + excluded.done_with_requests,
            first_session = least(l.first_session, excluded.first_session),
            last_session = greatest(l.last_session, excluded.last_session),
            next_attempt_at = least(l.next_attempt_at, excluded.next_attempt_at),
            last_due_at = greatest(l.last_due_at, excluded.last_due_at),
            lease_expires_at = least(l.lease_expires_at, excluded.lease_expires_at),
            last_claimed_at = greatest(l.last_claimed_at, excluded.last_claimed_at),
            last_completed_at = greatest(l.last_completed_at, excluded.last_completed_at),
            due_at = least(l.due_at, excluded.due_at);
        -- new work: running serve replicas claim it within a second (a statement
        -- that inserted nothing, e.g. a request for what is planned, wakes nobody)
        IF EXISTS (SELECT FROM new_chunks) THEN
            PERFORM pgbars._wake_workers('chunks');
        END IF;
        RETURN NULL;
    ELSIF tg_op = 'DELETE' THEN
        SELECT array_agg(p.job_id), array_agg(p.provider) INTO v_jobs, v_providers
        FROM (SELECT DISTINCT o.job_id, o.provider FROM old_chunks AS o) AS p;
    ELSE
        SELECT array_agg(p.job_id), array_agg(p.provider) INTO v_jobs, v_providers
        FROM (
            SELECT n.job_id, n.provider FROM new_chunks AS n
            UNION
            SELECT o.job_id, o.provider FROM old_chunks AS o
        ) AS p;
    END IF;
    IF v_jobs IS NOT NULL THEN
        -- first the jobs' locks, then (a new statement: a new snapshot, under READ COMMITTED)
        -- the count, so it sees every change committed by whoever held them before
        PERFORM
        FROM pgbars.backfill_jobs AS j
        WHERE j.id = ANY(v_jobs)
        ORDER BY j.id
        FOR NO KEY UPDATE OF j;
        PERFORM pgbars._refresh_backfill_lanes(v_jobs, v_providers);
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbars._backfill_chunks_changed() IS
'Trigger function: refreshes the backfill_lanes of the jobs whose chunks a statement inserted, updated or deleted.';
