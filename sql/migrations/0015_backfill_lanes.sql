-- The queue of backfill chunks, one row per (job, provider): counters and
-- times kept from the lane's chunks by a statement trigger on backfill_chunks
-- (_refresh_backfill_lanes), so that a claim reaches the next job by an index
-- instead of ranking every due chunk, and progress and ETA read one row per
-- lane instead of every chunk (docs/database.md, "Claiming").
CREATE TABLE pgbars.backfill_lanes (
    job_id bigint NOT NULL REFERENCES pgbars.backfill_jobs (id) ON DELETE CASCADE,
    provider text NOT NULL REFERENCES pgbars.providers (name),
    chunks integer NOT NULL,
    done integer NOT NULL,
    failed integer NOT NULL,
    running integer NOT NULL,
    sessions_total bigint NOT NULL,
    sessions_done bigint NOT NULL,
    bars_written bigint NOT NULL,
    bars_rejected bigint NOT NULL,
    empty_chunks integer NOT NULL,
    requests_done bigint NOT NULL,
    done_with_requests integer NOT NULL,
    first_session date NOT NULL,
    last_session date NOT NULL,
    next_attempt_at timestamptz,
    last_due_at timestamptz,
    lease_expires_at timestamptz,
    last_claimed_at timestamptz,
    last_completed_at timestamptz,
    due_at timestamptz,
    PRIMARY KEY (job_id, provider)
);

-- The claim: per provider, the lanes with queued chunks in round-robin order.
CREATE INDEX backfill_lanes_claim_idx ON pgbars.backfill_lanes (
    provider, running, last_claimed_at NULLS FIRST, job_id
) WHERE due_at IS NOT NULL;

-- next_claimable_at: per provider, the earliest lane to come due.
CREATE INDEX backfill_lanes_due_idx ON pgbars.backfill_lanes (provider, due_at)
WHERE due_at IS NOT NULL;

-- The claim's second step: a lane's (job and provider's) queued chunks, newest first. It
-- replaces the index of due work by provider, which the claim no longer scans.
DROP INDEX pgbars.backfill_chunks_claimable_idx;
CREATE INDEX backfill_chunks_queue_idx ON pgbars.backfill_chunks (job_id, provider, last_session)
WHERE status IN ('pending', 'running');

-- The claim's first step: leases that expired on their last allowed attempt.
CREATE INDEX backfill_chunks_lease_expiry_idx ON pgbars.backfill_chunks (lease_expires_at)
WHERE status = 'running';

-- The lanes of the chunks already planned (afterwards the trigger keeps them).
INSERT INTO pgbars.backfill_lanes
SELECT
    c.job_id,
    c.provider,
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
    max(c.completed_at) AS last_completed_at,
    least(
        min(c.next_attempt_at) FILTER (WHERE c.status = 'pending'),
        min(c.lease_expires_at) FILTER (WHERE c.status = 'running')
    ) AS due_at
FROM pgbars.backfill_chunks AS c
GROUP BY c.job_id, c.provider;

-- The action-refresh claim: per source, the earliest due refreshes in index order,
-- ties by symbol (it sorted every due refresh by ticker).
DROP INDEX pgbars.action_refreshes_due_idx;
CREATE INDEX action_refreshes_due_idx ON pgbars.action_refreshes (provider, due_at, symbol_id);
