-- request_backfill for many tickers in one call: one row per ticker, in the order given.
CREATE OR REPLACE FUNCTION pgbars.request_backfills(
    p_tickers text[],
    p_timeframes text[] DEFAULT '{h1}',
    p_start date DEFAULT NULL,
    p_end date DEFAULT NULL,
    p_years integer DEFAULT 2
)
RETURNS SETOF jsonb
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    `pgbars request` with thousands of tickers, and a script's door: every
    ticker is seeded as request_backfill seeds one (the same rule, one
    statement and one round trip for all), in the order given; a ticker
    given twice is seeded once, where it first appears. One bad ticker raises
    and, the statement being one, requests none of them.
    */
    SELECT pgbars.request_backfill(t.ticker, p_timeframes, p_start, p_end, p_years)
    FROM (
        SELECT DISTINCT ON (pgbars.normalize_ticker(u.ticker))
            u.ticker,
            u.n
        FROM unnest(p_tickers) WITH ORDINALITY AS u (ticker, n)
        ORDER BY pgbars.normalize_ticker(u.ticker), u.n
    ) AS t
    ORDER BY t.n;
$$;

COMMENT ON FUNCTION pgbars.request_backfills(text[], text[], date, date, integer) IS
'request_backfill for every ticker of p_tickers in one statement (each once, in the order given): '
'one jsonb per ticker; one bad ticker requests none.';
