-- Progress of one ticker's backfill, one row per timeframe.
CREATE OR REPLACE FUNCTION pgbars.backfill_status(p_ticker text)
RETURNS TABLE (
    timeframe text,
    status text,
    progress numeric,
    done bigint,
    pending bigint,
    running bigint,
    failed bigint,
    total bigint,
    sessions_done bigint,
    sessions_total bigint,
    bars_written bigint,
    first_session date,
    last_session date
)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /* Reads the backfill_progress view; an unknown ticker has no rows. */
    SELECT
        bp.timeframe,
        bp.status,
        bp.progress,
        bp.done,
        bp.pending,
        bp.running,
        bp.failed,
        bp.total,
        bp.sessions_done,
        bp.sessions_total,
        bp.bars_written,
        bp.first_session,
        bp.last_session
    FROM pgbars.backfill_progress AS bp
    INNER JOIN pgbars.timeframes AS tf ON bp.timeframe = tf.name
    WHERE bp.symbol = pgbars.normalize_ticker(p_ticker)
    ORDER BY tf.sort_order;
$$;

COMMENT ON FUNCTION pgbars.backfill_status(text) IS
'One row per timeframe of the ticker''s backfill: status, progress in % of sessions, chunk counts, bars.';
