-- Gaps: sessions pgbars.repair_gaps sent back to their provider after an
-- empty answer, and those confirmed empty after the re-fetch was empty too.

-- One row per job and session that repair_gaps re-queued because its chunk
-- was done without a bar for it: a session is re-fetched once. When the
-- re-fetch is empty as well, the session is confirmed empty (confirmed_at,
-- reason: a halt, a day before the listing...): coverage reports it as
-- explained, not missing, and nothing fetches it again.
CREATE TABLE pgbars.gap_repairs (
    job_id bigint NOT NULL REFERENCES pgbars.backfill_jobs (id) ON DELETE CASCADE,
    session_date date NOT NULL REFERENCES pgbars.market_sessions (session_date),
    requeued_at timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz,
    reason text,
    PRIMARY KEY (job_id, session_date),
    CHECK ((confirmed_at IS NULL) = (reason IS NULL))
);
