-- Running chunks whose lease has expired: their worker stopped without an outcome.
-- The next claim hands such a chunk out again (another attempt), or fails it
-- when its last allowed attempt is spent (will_fail).
CREATE OR REPLACE VIEW pgbars.expired_leases AS
SELECT
    c.id AS chunk_id,
    s.ticker::text AS symbol,
    j.timeframe,
    c.provider,
    c.first_session,
    c.last_session,
    c.session_count,
    c.claimed_by,
    c.claimed_at,
    c.lease_expires_at,
    now() - c.lease_expires_at AS expired_for,
    c.attempts,
    c.max_attempts,
    c.attempts >= c.max_attempts AS will_fail,
    c.last_error,
    c.job_id,
    s.id AS symbol_id
FROM pgbars.backfill_chunks AS c
INNER JOIN pgbars.backfill_jobs AS j ON c.job_id = j.id
INNER JOIN pgbars.symbols AS s ON j.symbol_id = s.id
WHERE
    c.status = 'running'
    AND c.lease_expires_at <= now();

COMMENT ON VIEW pgbars.expired_leases IS
'Running chunks whose lease expired without an outcome: who held it, since when, and attempts '
'(will_fail: the next claim fails the chunk instead of handing it out).';
