-- Chunks that failed for good, with the error of their last attempt.
-- A failed chunk is never claimed again, so its sessions stay missing
-- (bar_coverage counts them).
CREATE OR REPLACE VIEW pgbars.failed_chunks AS
SELECT
    c.id AS chunk_id,
    s.ticker::text AS symbol,
    j.timeframe,
    c.provider,
    c.first_session,
    c.last_session,
    c.session_count,
    c.attempts,
    c.max_attempts,
    c.last_error,
    c.claimed_by,
    c.completed_at,
    c.job_id,
    s.id AS symbol_id
FROM pgbars.backfill_chunks AS c
INNER JOIN pgbars.backfill_jobs AS j ON c.job_id = j.id
INNER JOIN pgbars.symbols AS s ON j.symbol_id = s.id
WHERE c.status = 'failed';

COMMENT ON VIEW pgbars.failed_chunks IS
'Chunks failed for good: symbol, timeframe, provider, sessions, attempts, last_error (secrets masked) '
'and when they failed (completed_at).';
