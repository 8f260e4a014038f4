-- What a live refresh fetches for each watchlist symbol, and what it stores.
CREATE OR REPLACE VIEW pgbars.live_plan AS
/*
The intraday timeframes of watchlist symbols (their backfill jobs and
derived jobs) are refreshed during the session from the enabled live
routes (provider_routes, purpose 'live': Tradier's m1, m5 and m15). A
timeframe with a live route of its own is fetched as it is; any other is
rolled up from the coarsest live timeframe whose bar length divides its own
(m30, h1 and h4 from m15), so one request serves several timeframes. One
row per (symbol, fetched timeframe): targets are the timeframes stored from
its answer, the fetched one included only when it is wanted.
*/
WITH wanted AS (
    SELECT DISTINCT
        j.symbol_id,
        t.name AS timeframe,
        t.bar_length,
        t.sort_order
    FROM pgbars.backfill_jobs AS j
    LEFT JOIN pgbars.derived_jobs AS d ON j.id = d.source_job_id
    CROSS JOIN LATERAL (VALUES (j.timeframe), (d.timeframe)) AS v (timeframe)
    INNER JOIN pgbars.timeframes AS t ON v.timeframe = t.name
    WHERE
        t.is_intraday
        AND EXISTS (
            SELECT FROM pgbars.watchlist_items AS w
            WHERE j.symbol_id = w.symbol_id
        )
),

live AS (
    SELECT
        r.timeframe,
        r.provider,
        r.priority,
        t.bar_length
    FROM pgbars.provider_routes AS r
    INNER JOIN pgbars.timeframes AS t ON r.timeframe = t.name
    WHERE r.purpose = 'live' AND r.enabled
),

sourced AS (
    SELECT
        w.symbol_id,
        w.timeframe AS target,
        w.sort_order,
        src.timeframe,
        src.provider
    FROM wanted AS w
    CROSS JOIN LATERAL (
        SELECT
            l.timeframe,
            l.provider
        FROM live AS l
        WHERE
            l.bar_length <= w.bar_length
            AND extract(EPOCH FROM w.bar_length)::bigint % extract(EPOCH FROM l.bar_length)::bigint = 0
        ORDER BY l.bar_length DESC, l.priority ASC
        LIMIT 1
    ) AS src
)

SELECT
    s.symbol_id,
    sym.ticker::text AS ticker,
    s.timeframe,
    s.provider,
    array_agg(s.target ORDER BY s.sort_order) AS targets
FROM sourced AS s
INNER JOIN pgbars.symbols AS sym ON s.symbol_id = sym.id
GROUP BY s.symbol_id, sym.ticker, s.timeframe, s.provider;

COMMENT ON VIEW pgbars.live_plan IS
'Per watchlist symbol and fetched live timeframe (m1/m5/m15): the live provider and the intraday '
'timeframes stored from its answer (targets; m30/h1/h4 are rolled up from m15).';
