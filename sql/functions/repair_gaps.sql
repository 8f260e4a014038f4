-- Re-queue the chunks of missing sessions: empty answers once, failed chunks; confirm twice-empty sessions.
CREATE OR REPLACE FUNCTION pgbars.repair_gaps(p_ticker text DEFAULT NULL)
RETURNS TABLE (
    symbol text,
    timeframe text,
    chunk_id bigint,
    first_session date,
    last_session date,
    action text,
    sessions date[]
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
Reads pgbars.session_coverage for the jobs of p_ticker (NULL: every job)
and acts on the missing sessions; one row per chunk and action:
- requeued_empty: sessions of a done chunk without a bar (the provider
  answered with nothing) are recorded in gap_repairs and their chunk goes
  back to pending with a fresh allowance of attempts. A chunk is one
  request, so the whole chunk is fetched again; its bars that did not
  change are not rewritten (store_chunk_bars upserts).
- confirmed_empty: sessions re-queued once whose chunk is done again
  without a bar for them: gap_repairs records when and why. They count as
  explained in coverage and are never re-queued again.
- requeued_failed: failed chunks holding missing sessions go back to
  pending with a fresh allowance of attempts (their last_error stays until
  the next outcome). Each call retries them again.
Pending and running chunks are left alone, so a second call before a
worker ran re-queues nothing. The jobs are locked in id order (as seeding
does), so concurrent calls act one after the other. An invalid ticker
raises 22023, one without a backfill job P0002.
*/
DECLARE
    v_ticker text;
    v_jobs bigint[];
BEGIN
    IF p_ticker IS NOT NULL THEN
        v_ticker := pgbars.normalize_ticker(p_ticker);
    END IF;
    WITH locked AS (
        SELECT j.id
        FROM pgbars.backfill_jobs AS j
        INNER JOIN pgbars.symbols AS s ON j.symbol_id = s.id
        WHERE v_ticker IS NULL OR s.ticker::text = v_ticker
        ORDER BY j.id
        FOR NO KEY UPDATE OF j
    )
    SELECT array_agg(l.id ORDER BY l.id) INTO v_jobs FROM locked AS l;
    IF v_ticker IS NOT NULL AND v_jobs IS NULL THEN
        RAISE EXCEPTION 'no backfill for %', v_ticker
            USING ERRCODE = 'P0002',
            HINT = format('request one with `pgbars request %s`', v_ticker);
    END IF;

    RETURN QUERY
    WITH
    gaps AS MATERIALIZED (
        SELECT
            v.job_id,
            v.symbol,
            v.timeframe,
            v.chunk_id,
            v.session_date,
            v.state,
            v.confirmed_at,
            v.reason
        FROM pgbars.session_coverage AS v
        WHERE v.job_id = ANY(v_jobs) AND v.state IN ('fetched_empty', 'failed', 'confirmed_empty')
    ),

    confirmed AS (
        UPDATE pgbars.gap_repairs AS r
        SET confirmed_at = g.confirmed_at, reason = g.reason
        FROM gaps AS g
        WHERE
            g.state = 'confirmed_empty'
            AND r.job_id = g.job_id
            AND r.session_date = g.session_date
            AND r.confirmed_at IS NULL
        RETURNING r.job_id, r.session_date
    ),

    noted AS (
        INSERT INTO pgbars.gap_repairs (job_id, session_date, requeued_at)
        SELECT g.job_id, g.session_date, now()
        FROM gaps AS g
        WHERE g.state = 'fetched_empty'
        ON CONFLICT (job_id, session_date) DO NOTHING
        RETURNING job_id, session_date
    ),

    requeued AS (
        UPDATE pgbars.backfill_chunks AS c
        SET
            status = 'pending',
            attempts = 0,
            next_attempt_at = now()
        WHERE
            c.id IN (SELECT g.chunk_id FROM gaps AS g WHERE g.state IN ('fetched_empty', 'failed'))
            AND c.status IN ('done', 'failed')
        RETURNING c.id, c.job_id, c.first_session, c.last_session
    ),

    acted AS (
        SELECT
            g.symbol,
            g.timeframe,
            g.job_id,
            q.id AS chunk_id,
            q.first_session,
            q.last_session,
            'requeued_empty' AS action,
            g.session_date
        FROM noted AS n
        INNER JOIN gaps AS g ON n.job_id = g.job_id AND n.session_date = g.session_date
        INNER JOIN requeued AS q ON g.chunk_id = q.id
        UNION ALL
        SELECT
            g.symbol,
            g.timeframe,
            g.job_id,
            q.id AS chunk_id,
            q.first_session,
            q.last_session,
            'requeued_failed',
            g.session_date
        FROM requeued AS q
        INNER JOIN gaps AS g ON q.id = g.chunk_id
        WHERE g.state = 'failed'
        UNION ALL
        SELECT
            g.symbol,
            g.timeframe,
            g.job_id,
            g.chunk_id,
            c.first_session,
            c.last_session,
            'confirmed_empty',
            g.session_date
        FROM confirmed AS f
        INNER JOIN gaps AS g ON f.job_id = g.job_id AND f.session_date = g.session_date
        INNER JOIN pgbars.backfill_chunks AS c ON g.chunk_id = c.id
    )

    SELECT
        a.symbol,
        a.timeframe,
        a.chunk_id,
        a.first_session,
        a.last_session,
        a.action,
        array_agg(a.session_date ORDER BY a.session_date)
    FROM acted AS a
    INNER JOIN pgbars.timeframes AS tf ON a.timeframe = tf.name
    GROUP BY a.symbol, a.timeframe, tf.sort_order, a.chunk_id, a.first_session, a.last_session, a.action
    ORDER BY a.symbol, tf.sort_order, a.first_session, a.action;
END;
$$;

COMMENT ON FUNCTION pgbars.repair_gaps(text) IS
'Re-queues, for p_ticker (NULL: all), done chunks whose sessions came back without bars (once per session, '
'recorded in gap_repairs) and failed chunks with missing sessions; sessions empty again after that re-fetch '
'are confirmed empty. Returns one row per chunk and action with its sessions. Idempotent until a worker runs.';
