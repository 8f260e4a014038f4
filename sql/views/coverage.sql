-- Gaps: which planned sessions of each job (symbol, timeframe) have bars,
-- and why the others have none. Both views are in this file because
-- coverage reads session_coverage (files are applied in name order).

-- One row per planned session of each job, with its state:
--   bars             at least one bar starts on the session's New York date
--                    (d1 bars at 00:00 New York; w1: the session's week,
--                    Monday to Sunday, has a bar, which starts on Monday)
--   confirmed_empty  empty after repair_gaps re-queued it once: explained
--   fetched_empty    its chunk is done, the provider answered without a bar
--   requeued         re-queued by repair_gaps after an empty answer; the
--                    re-fetch has not come back yet
--   not_fetched      its chunk is pending or running: never answered
--   failed           its chunk failed for good
-- A session re-queued once is confirmed empty as soon as its chunk is done
-- again without a bar; repair_gaps then records when and why in
-- gap_repairs, so the confirmation holds even if the chunk is fetched again.
-- The bars probe is one primary-key lookup per session.
CREATE OR REPLACE VIEW pgbars.session_coverage AS
WITH
-- every planned session of every job, with the New York days its bars may
-- start on: the session's date, or for w1 the week (Monday to Sunday)
planned AS (
    SELECT
        j.id AS job_id,
        j.symbol_id,
        j.timeframe,
        c.id AS chunk_id,
        c.status AS chunk_status,
        c.provider,
        c.completed_at,
        m.session_date,
        (
            CASE
                WHEN j.timeframe = 'w1' THEN date_trunc('week', m.session_date::timestamp)
                ELSE m.session_date::timestamp
            END
        ) AT TIME ZONE 'America/New_York' AS bars_from,
        (
            CASE
                WHEN j.timeframe = 'w1' THEN date_trunc('week', m.session_date::timestamp) + interval '7 days'
                ELSE m.session_date::timestamp + interval '1 day'
            END
        ) AT TIME ZONE 'America/New_York' AS bars_until
    FROM pgbars.backfill_jobs AS j
    INNER JOIN pgbars.backfill_chunks AS c ON j.id = c.job_id
    INNER JOIN pgbars.market_sessions AS m
        ON m.session_date BETWEEN c.first_session AND c.last_session
),

-- does the session hold a bar (one probe of the primary key), and its repair record
probed AS (
    SELECT
        p.job_id,
        p.symbol_id,
        p.timeframe,
        p.chunk_id,
        p.chunk_status,
        p.provider,
        p.completed_at,
        p.session_date,
        p.bars_from,
        p.bars_until,
        r.requeued_at,
        r.confirmed_at AS recorded_at,
        r.reason AS recorded_reason,
        coalesce(h.has_bars, FALSE) AS has_bars
    FROM planned AS p
    LEFT JOIN pgbars.gap_repairs AS r
        ON p.job_id = r.job_id AND p.session_date = r.session_date
    LEFT JOIN LATERAL (
        SELECT TRUE AS has_bars
        FROM pgbars.ohlc_bars_v2 AS b
        WHERE
            b.symbol_id = p.symbol_id
            AND b.timeframe = p.timeframe
            AND b.ts >= p.bars_from
            AND b.ts < p.bars_until
            AND NOT b.is_forecast
            AND NOT b.is_provisional
        ORDER BY b.ts
        LIMIT 1
    ) AS h ON TRUE
),

classified AS (
    SELECT
        q.job_id,
        q.symbol_id,
        q.timeframe,
        q.chunk_id,
        q.chunk_status,
        q.provider,
        q.completed_at,
        q.session_date,
        q.bars_from,
        q.bars_until,
        q.requeued_at,
        q.recorded_at,
        q.recorded_reason,
        CASE
            WHEN q.has_bars THEN 'bars'
            WHEN q.recorded_at IS NOT NULL OR (q.requeued_at IS NOT NULL AND q.chunk_status = 'done')
                THEN 'confirmed_empty'
            WHEN q.chunk_status = 'done' THEN 'fetched_empty'
            WHEN q.chunk_status = 'failed' THEN 'failed'
            WHEN q.requeued_at IS NOT NULL THEN 'requeued'
            ELSE 'not_fetched'
        END AS state
    FROM probed AS q
)

SELECT
    s.ticker::text AS symbol,
    k.timeframe,
    k.session_date,
    k.state,
    k.chunk_id,
    k.chunk_status,
    k.provider,
    k.requeued_at,
    CASE WHEN k.state = 'confirmed_empty' THEN coalesce(k.recorded_at, k.completed_at) END AS confirmed_at,
    -- why a confirmed-empty session has no bar: recorded by repair_gaps, else a
    -- guess from the bars around it (read only for such sessions)
    CASE
        WHEN k.state <> 'confirmed_empty' THEN NULL
        WHEN k.recorded_reason IS NOT NULL THEN k.recorded_reason
        WHEN EXISTS (
            SELECT 1
            FROM pgbars.rejected_bars AS rb
            WHERE rb.chunk_id = k.chunk_id AND rb.ts >= k.bars_from AND rb.ts < k.bars_until
        ) THEN 'no valid bar twice: the provider''s bars were rejected (see rejected_bars)'
        WHEN NOT EXISTS (
            SELECT 1
            FROM pgbars.ohlc_bars_v2 AS b
            WHERE
                b.symbol_id = k.symbol_id AND b.timeframe = k.timeframe AND NOT b.is_forecast
                AND NOT b.is_provisional
        ) THEN 'empty twice, and no bars at all: does the provider know this ticker?'
        WHEN k.bars_from < (
            SELECT min(b.ts)
            FROM pgbars.ohlc_bars_v2 AS b
            WHERE
                b.symbol_id = k.symbol_id AND b.timeframe = k.timeframe AND NOT b.is_forecast
                AND NOT b.is_provisional
        ) THEN 'empty twice, before the first bar: not listed yet?'
        WHEN k.bars_until > (
            SELECT max(b.ts)
            FROM pgbars.ohlc_bars_v2 AS b
            WHERE
                b.symbol_id = k.symbol_id AND b.timeframe = k.timeframe AND NOT b.is_forecast
                AND NOT b.is_provisional
        ) THEN 'empty twice, after the last bar: delisted?'
        ELSE 'empty twice, between bars: a trading halt?'
    END AS reason,
    k.job_id,
    k.symbol_id
FROM classified AS k
INNER JOIN pgbars.symbols AS s ON k.symbol_id = s.id;

COMMENT ON VIEW pgbars.session_coverage IS
'One row per planned session of each job (symbol, timeframe): state bars, confirmed_empty, fetched_empty '
'(the provider answered without a bar), requeued (by repair_gaps), not_fetched or failed; its chunk, and '
'for confirmed-empty sessions when and why.';

-- One row per job (symbol, timeframe): the planned window, the bars, and the
-- planned sessions by state. sessions_expected = sessions_with_bars +
-- confirmed_empty + sessions_missing, and the missing ones split into
-- fetched_empty + requeued + not_fetched + failed. Filtering by symbol reads
-- only that symbol's chunks and bars (the sessions are read per job).
CREATE OR REPLACE VIEW pgbars.coverage AS
SELECT
    s.ticker::text AS symbol,
    j.timeframe,
    k.window_start,
    k.window_end,
    (
        SELECT min(b.ts)
        FROM pgbars.ohlc_bars_v2 AS b
        WHERE
            b.symbol_id = j.symbol_id AND b.timeframe = j.timeframe AND NOT b.is_forecast
            AND NOT b.is_provisional
    ) AS first_bar,
    (
        SELECT max(b.ts)
        FROM pgbars.ohlc_bars_v2 AS b
        WHERE
            b.symbol_id = j.symbol_id AND b.timeframe = j.timeframe AND NOT b.is_forecast
            AND NOT b.is_provisional
    ) AS last_bar,
    k.sessions_expected,
    k.sessions_with_bars,
    k.confirmed_empty,
    k.sessions_missing,
    k.missing_fetched_empty,
    k.missing_requeued,
    k.missing_not_fetched,
    k.missing_failed,
    k.missing_sessions,
    j.id AS job_id,
    s.id AS symbol_id
FROM pgbars.backfill_jobs AS j
INNER JOIN pgbars.symbols AS s ON j.symbol_id = s.id
CROSS JOIN LATERAL (
    SELECT
        min(v.session_date) AS window_start,
        max(v.session_date) AS window_end,
        count(*) AS sessions_expected,
        count(*) FILTER (WHERE v.state = 'bars') AS sessions_with_bars,
        count(*) FILTER (WHERE v.state = 'confirmed_empty') AS confirmed_empty,
        count(*) FILTER (WHERE v.state NOT IN ('bars', 'confirmed_empty')) AS sessions_missing,
        count(*) FILTER (WHERE v.state = 'fetched_empty') AS missing_fetched_empty,
        count(*) FILTER (WHERE v.state = 'requeued') AS missing_requeued,
        count(*) FILTER (WHERE v.state = 'not_fetched') AS missing_not_fetched,
        count(*) FILTER (WHERE v.state = 'failed') AS missing_failed,
        coalesce(
            array_agg(v.session_date ORDER BY v.session_date) FILTER (
                WHERE v.state NOT IN ('bars', 'confirmed_empty')
            ),
            '{}'
        ) AS missing_sessions
    FROM pgbars.session_coverage AS v
    WHERE v.job_id = j.id
) AS k;

COMMENT ON VIEW pgbars.coverage IS
'Gaps per job (symbol, timeframe): planned window, first/last bar, sessions expected, with bars, confirmed '
'empty and missing (fetched_empty, requeued, not_fetched, failed), and the missing sessions as a list.';
