-- Backfill progress per job, from its lanes (backfill_lanes: one row per job
-- and provider, whose counters the trigger on backfill_chunks keeps), so a
-- read costs one or two rows per job however many chunks it has.
-- A running chunk whose lease expired counts as pending: it is claimable.
-- Only a lane with such a lease (its earliest lease_expires_at has passed)
-- counts its live leases from its chunks.
-- A derived timeframe (h4 from h1, w1 from d1: derived_jobs) has no chunks of
-- its own: its row shows its source job's chunks (job_id is the source's),
-- bars_written counts its derived (history) bars, and derived_from names the source
-- timeframe (NULL for fetched jobs).
CREATE OR REPLACE VIEW pgbars.backfill_progress AS
WITH jobs AS (
    SELECT
        j.id,
        j.symbol_id,
        j.timeframe,
        NULL::text AS derived_from
    FROM pgbars.backfill_jobs AS j
    UNION ALL
    SELECT
        j.id,
        j.symbol_id,
        d.timeframe,
        j.timeframe AS derived_from
    FROM pgbars.derived_jobs AS d
    INNER JOIN pgbars.backfill_jobs AS j ON d.source_job_id = j.id
)

SELECT
    s.ticker::text AS symbol,
    j.timeframe,
    CASE
        WHEN k.done + k.failed = k.total AND k.failed > 0 THEN 'done_with_errors'
        WHEN k.done + k.failed = k.total THEN 'done'
        WHEN k.running > 0 OR k.done + k.failed > 0 THEN 'running'
        ELSE 'pending'
    END AS status,
    coalesce(round(100.0 * k.sessions_done / nullif(k.sessions_total, 0), 1), 100.0) AS progress,
    k.done,
    k.total - k.done - k.failed - k.running AS pending,
    k.running,
    k.failed,
    k.total,
    k.sessions_done,
    k.sessions_total,
    CASE
        WHEN j.derived_from IS NULL THEN k.bars_written
        ELSE (
            SELECT count(DISTINCT b.ts)
            FROM pgbars.ohlc_bars_v2 AS b
            WHERE
                b.symbol_id = j.symbol_id
                AND b.timeframe = j.timeframe
                AND NOT b.is_forecast
                AND NOT b.is_provisional
        )
    END AS bars_written,
    CASE WHEN j.derived_from IS NULL THEN k.bars_rejected ELSE 0 END AS bars_rejected,
    k.empty_chunks,
    k.first_session,
    k.last_session,
    k.next_attempt_at,
    k.last_completed_at,
    j.id AS job_id,
    s.id AS symbol_id,
    j.derived_from
FROM jobs AS j
INNER JOIN pgbars.symbols AS s ON j.symbol_id = s.id
CROSS JOIN LATERAL (
    SELECT
        coalesce(sum(l.chunks), 0) AS total,
        coalesce(sum(l.done), 0) AS done,
        coalesce(sum(l.failed), 0) AS failed,
        coalesce(sum(
            CASE
                WHEN l.running = 0 OR l.lease_expires_at > now() THEN l.running
                ELSE (
                    SELECT count(*)
                    FROM pgbars.backfill_chunks AS c
                    WHERE
                        c.job_id = l.job_id
                        AND c.provider = l.provider
                        AND c.status = 'running'
                        AND c.lease_expires_at > now()
                )
            END
        ), 0)::bigint AS running,
        coalesce(sum(l.sessions_total), 0)::bigint AS sessions_total,
        coalesce(sum(l.sessions_done), 0)::bigint AS sessions_done,
        coalesce(sum(l.bars_written), 0)::bigint AS bars_written,
        coalesce(sum(l.bars_rejected), 0)::bigint AS bars_rejected,
        coalesce(sum(l.empty_chunks), 0) AS empty_chunks,
        min(l.first_session) AS first_session,
        max(l.last_session) AS last_session,
        min(l.next_attempt_at) AS next_attempt_at,
        max(l.last_completed_at) AS last_completed_at
    FROM pgbars.backfill_lanes AS l
    WHERE l.job_id = j.id
) AS k;

COMMENT ON VIEW pgbars.backfill_progress IS
'Backfill progress per (symbol, timeframe): status, progress (% of sessions done), chunk counts, bars; '
'a derived timeframe shows its source job''s chunks (derived_from).';
