-- True when bars are stored for the ticker and timeframe.
CREATE OR REPLACE FUNCTION pgbars.has_backfill_data(p_ticker text, p_timeframe text DEFAULT 'h1')
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    Bars, not a job: a seeded but unfetched backfill is false. History bars
    only: today's provisional bars (is_provisional) are no backfill. The
    inputs are checked first (22023), in a CTE the query scans, so a bad
    ticker or timeframe is refused even where no bar would be compared to it.
    */
    WITH asked AS MATERIALIZED (
        SELECT
            pgbars.normalize_ticker(p_ticker) AS ticker,
            (pgbars._validate_timeframes(ARRAY[p_timeframe]))[1] AS timeframe
    )

    SELECT EXISTS (
        SELECT 1
        FROM pgbars.ohlc_bars_v2 AS b
        INNER JOIN pgbars.symbols AS s ON b.symbol_id = s.id
        WHERE
            s.ticker = asked.ticker
            AND b.timeframe = asked.timeframe
            AND NOT b.is_provisional
    )
    FROM asked;
$$;

COMMENT ON FUNCTION pgbars.has_backfill_data(text, text) IS
'True when at least one bar is stored for the ticker and timeframe (default h1); false for unknown tickers.';
