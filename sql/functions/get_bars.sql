-- The bars of one ticker and timeframe in [p_from, p_to): one per timestamp, the best provider's.
CREATE OR REPLACE FUNCTION pgbars.get_bars(
    p_ticker text,
    p_timeframe text,
    p_from timestamptz,
    p_to timestamptz
)
RETURNS TABLE (
    ts timestamptz,
    open double precision,
    high double precision,
    low double precision,
    close double precision,
    volume bigint,
    vwap double precision,
    trade_count bigint,
    provider text,
    is_intraday boolean,
    adjustment text,
    fetched_at timestamptz
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The read path (docs/reading.md). Where several providers hold a bar for the
same ts, the one returned is the first of:
  1. providers with an enabled 'history' route for the timeframe, by priority
     (lower number first): the history provider over its fallback;
  2. providers with an enabled 'live' route, by priority: provisional bars,
     used only where no history bar exists;
  3. any other provider (no enabled route), by name.
Disabling a route or changing priorities in provider_routes changes the
winner at the next call. Forecast bars are never returned.

Inputs are checked before anything is read, so a bad ticker or timeframe
raises 22023 whether or not the symbol exists; an unknown symbol returns
no rows. The bars are read by one range scan of the primary key
(symbol_id, timeframe, ts, provider, ...), which yields them in (ts,
provider) order. When the ranking of all providers for the timeframe is
their alphabetical order (h1: polygon, then tradier and yahoo, unrouted),
that order is already rank order and DISTINCT ON (ts) needs no sort;
otherwise (m5: polygon, yahoo, tradier) the rows are sorted by ts and rank.

tests/sql/test_get_bars.py and bench/read.py EXPLAIN the two RETURN QUERY
statements, read from pg_proc with the variables as parameters: keep each
one statement ending in ';'.

SECURITY DEFINER: it reads symbols, providers and provider_routes, which
pgbars_reader cannot SELECT, and returns only bars, which it can.
*/
DECLARE
    v_ticker pgbars.ticker := pgbars.normalize_ticker(p_ticker);
    v_timeframe text;
    v_symbol_id uuid;
    v_ranked text[];
    v_by_name text[];
BEGIN
    IF p_timeframe IS NULL OR btrim(p_timeframe) = '' THEN
        RAISE EXCEPTION 'timeframe is missing'
            USING ERRCODE = '22023';
    END IF;
    SELECT tf.name INTO v_timeframe
    FROM pgbars.timeframes AS tf
    WHERE tf.name = lower(btrim(p_timeframe));
    IF NOT FOUND THEN
        -- raises 22023 naming the timeframe, with the list of known ones
        PERFORM pgbars._validate_timeframes(ARRAY[p_timeframe]);
    END IF;
    IF p_from IS NULL OR p_to IS NULL THEN
        RAISE EXCEPTION 'p_from and p_to are both required'
            USING ERRCODE = '22023',
            HINT = 'Use ''-infinity'' or ''infinity'' for an open end.';
    END IF;
    IF p_from > p_to THEN
        RAISE EXCEPTION 'p_from % is after p_to %', p_from, p_to
            USING ERRCODE = '22023';
    END IF;

    SELECT s.id INTO v_symbol_id
    FROM pgbars.symbols AS s
    WHERE s.ticker = v_ticker;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    v_ranked := pgbars._provider_ranking(v_timeframe);
    SELECT array_agg(p.name ORDER BY p.name) INTO v_by_name FROM pgbars.providers AS p;

    -- In both statements, `is_forecast IS NOT TRUE` rather than `NOT
    -- is_forecast` keeps the column out of the index condition: there, after
    -- the ts range, PostgreSQL 18 estimates the scan ~100x costlier than it is
    -- (69,000 instead of 570 for 8,000 bars of 4 million), enough to pass
    -- jit_above_cost on a big table. As a filter it costs nothing.
    IF v_ranked = v_by_name THEN
        -- rank order is index order: no sort
        RETURN QUERY
        SELECT DISTINCT ON (b.ts)
            b.ts,
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            b.vwap,
            b.trade_count,
            b.provider,
            b.is_intraday,
            b.adjustment,
            b.fetched_at
        FROM pgbars.ohlc_bars_v2 AS b
        WHERE
            b.symbol_id = v_symbol_id
            AND b.timeframe = v_timeframe
            AND b.ts >= p_from
            AND b.ts < p_to
            AND b.is_forecast IS NOT TRUE
        ORDER BY b.ts, b.provider;
    ELSE
        RETURN QUERY
        SELECT DISTINCT ON (b.ts)
            b.ts,
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            b.vwap,
            b.trade_count,
            b.provider,
            b.is_intraday,
            b.adjustment,
            b.fetched_at
        FROM pgbars.ohlc_bars_v2 AS b
        WHERE
            b.symbol_id = v_symbol_id
            AND b.timeframe = v_timeframe
            AND b.ts >= p_from
            AND b.ts < p_to
            AND b.is_forecast IS NOT TRUE
        ORDER BY b.ts, array_position(v_ranked, b.provider);
    END IF;
END;
$$;

COMMENT ON FUNCTION pgbars.get_bars(text, text, timestamptz, timestamptz) IS
'One bar per ts with p_from <= ts < p_to, in ts order, of the ticker and timeframe: the provider of the '
'enabled history route with the lowest priority number, else of a live route (provisional), else any other '
'(by name); forecasts excluded. Unknown symbol: no rows; bad ticker, timeframe or bounds: 22023.';
