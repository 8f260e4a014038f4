-- Stored bars per job (symbol, timeframe) against the sessions its chunks plan.
-- Units: intraday and d1 count sessions (New York dates: a bar belongs to the
-- session on whose New York date it starts; d1 bars start at 00:00 New York);
-- w1 counts weeks (Monday to Sunday, New York; w1 bars start at 00:00 New
-- York on Monday), one per week holding at least one planned session.
-- units_with_bars probes the bars' primary key once per planned unit, so it
-- costs the same for m1 and d1; bars (a count) reads the job's index range.
-- Forecast bars (is_forecast) are not data and provisional bars (is_provisional:
-- today's, from a live refresh) are not history: both are left out everywhere.
-- Units are planned per job (LATERAL), so filtering by symbol reads only
-- that symbol's chunks and bars.
CREATE OR REPLACE VIEW pgbars.bar_coverage AS
SELECT
    s.ticker::text AS symbol,
    j.timeframe,
    CASE WHEN j.timeframe = 'w1' THEN 'week' ELSE 'session' END AS unit,
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
    (
        SELECT count(*)
        FROM pgbars.ohlc_bars_v2 AS b
        WHERE
            b.symbol_id = j.symbol_id AND b.timeframe = j.timeframe AND NOT b.is_forecast
            AND NOT b.is_provisional
    ) AS bars,
    min(u.first_session) AS first_session,
    max(u.last_session) AS last_session,
    count(u.unit_start) AS units_planned,
    count(*) FILTER (WHERE h.has_bars) AS units_with_bars,
    count(u.unit_start) FILTER (WHERE h.has_bars IS NULL) AS units_missing,
    count(u.unit_start) FILTER (WHERE h.has_bars IS NULL AND u.fetched) AS units_missing_fetched,
    coalesce(round(100.0 * count(*) FILTER (WHERE h.has_bars) / nullif(count(u.unit_start), 0), 1), 0.0)
        AS coverage,
    j.id AS job_id,
    s.id AS symbol_id
FROM pgbars.backfill_jobs AS j
INNER JOIN pgbars.symbols AS s ON j.symbol_id = s.id
-- the job's planned units; a unit is fetched when every chunk holding one
-- of its sessions is done
LEFT JOIN LATERAL (
    SELECT
        CASE
            WHEN j.timeframe = 'w1' THEN date_trunc('week', m.session_date::timestamp)::date
            ELSE m.session_date
        END AS unit_start,
        min(m.session_date) AS first_session,
        max(m.session_date) AS last_session,
        bool_and(c.status = 'done') AS fetched
    FROM pgbars.backfill_chunks AS c
    INNER JOIN pgbars.market_sessions AS m
        ON m.session_date BETWEEN c.first_session AND c.last_session
    WHERE c.job_id = j.id
    GROUP BY unit_start
) AS u ON TRUE
-- does the unit hold a bar? One probe of the primary key (NULL: no bar)
LEFT JOIN LATERAL (
    SELECT TRUE AS has_bars
    FROM pgbars.ohlc_bars_v2 AS b
    WHERE
        b.symbol_id = j.symbol_id
        AND b.timeframe = j.timeframe
        AND b.ts >= u.unit_start::timestamp AT TIME ZONE 'America/New_York'
        AND b.ts < (u.unit_start + CASE WHEN j.timeframe = 'w1' THEN 7 ELSE 1 END)::timestamp
        AT TIME ZONE 'America/New_York'
        AND NOT b.is_forecast
        AND NOT b.is_provisional
    ORDER BY b.ts
    LIMIT 1
) AS h ON TRUE
GROUP BY j.id, s.id;

COMMENT ON VIEW pgbars.bar_coverage IS
'Bars per job (symbol, timeframe): first/last bar and count, and the planned units (sessions; weeks for w1) '
'with bars, missing, and missing although fetched; coverage in percent.';
