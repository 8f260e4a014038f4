-- The bars of one ticker and timeframe in [p_from, p_to): one per timestamp, the best provider's, adjusted.
CREATE OR REPLACE FUNCTION pgbars.get_bars(
    p_ticker text,
    p_timeframe text,
    p_from timestamptz,
    p_to timestamptz,
    p_adjust text DEFAULT 'splits'
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
    is_provisional boolean,
    fetched_at timestamptz
)
LANGUAGE sql
STABLE
AS $$
    /*
    The read path (docs/reading.md). Where several providers hold a bar for
    the same ts, the one returned is the first of:
      1. providers with an enabled 'history' route for the timeframe, by
         priority (lower number first): the history provider over its fallback;
      2. providers with an enabled 'live' route, by priority: provisional
         bars, used only where no history bar exists;
      3. any other provider (no enabled route), by name.
    Disabling a route or changing priorities in provider_routes changes the
    winner at the next call. Forecast bars are never returned.

    Stored bars are raw (as traded). p_adjust: 'none' returns them as they
    are; 'splits' (the default) multiplies prices (and vwap) by, and divides
    volume by, the factor of every split after the bar; 'all' also applies
    cash dividends to prices (CRSP factors), volume by splits only. The
    factors come from corporate_actions at each call, as steps over time
    (_adjustment_steps, through _get_bars_request). adjust_mode says how a
    bar takes its factor: 0, none to apply (no action, or none after the
    window); 1, at most three steps inside the window, as scalars: a few
    comparisons of ts per bar; 2, the arrays and width_bucket. Each output
    bar's two factors are computed once, in the subquery q (an output column
    that repeated the expression would compute it once per column: PostgreSQL
    finds no common subexpression), and the outer SELECT multiplies by them;
    the scalar form keeps the cost per bar low (docs/benchmarks.md).
    Adjusted volume is rounded to a whole number.

    A plain SQL function of one SELECT, neither SECURITY DEFINER nor SET:
    PostgreSQL inlines it into the calling query, and the rows stream from
    the index scan to the client, where a PL/pgSQL function would store them
    first. _get_bars_request (SECURITY DEFINER) checks the inputs, raising
    22023 before anything is read, and finds the symbol, the ranking and the
    best-ranked provider with a bar in the window. The bars are read with the
    caller's rights: pgbars_reader may SELECT ohlc_bars_v2. Every name is
    schema-qualified; the operators are the built-in ones.

    The plan is one range scan of the primary key (symbol_id, timeframe, ts,
    provider, is_forecast), which yields the bars in ts order: no Unique and
    no sort. A bar of best_provider is returned as it is: no better-ranked
    provider has a bar in the window. A bar of another provider (usually
    there is none) is returned when _get_bars_rivals lists it; that function
    runs at the first such bar of each year read, and its rows are hashed.

    The scan takes its keys from _get_bars_request's row rather than from the
    arguments, so the planner never plans for the bounds' values (for which
    it chose a bitmap scan and a sort) and never folds a NULL argument away
    before the inputs are checked. It then estimates a few dozen rows, for
    which it costs the ordered index scan and a bitmap scan followed by a sort
    about equal; for thousands of rows the sort costs 2-3x the scan. `LIMIT
    (SELECT NULL::bigint)` returns every row (a NULL limit is no limit), but
    the planner, not knowing the limit when it plans, assumes only part of the
    rows will be fetched and so prefers the plan that returns the first ones
    at once: the ordered index scan.

    ohlc_bars_v2 is partitioned by year of ts (migration 0016). The bounds
    are given twice: from r for the index condition, as above, and from the
    arguments, which the planner can compare with the partition bounds. The
    latter are a looser window, from the lesser argument to the greater,
    inclusive, an infinity for a NULL, so that no bad input (a NULL, reversed
    or equal bounds) lets the planner prove the window empty and skip r's
    checks. A call with constant bounds (a client's parameters in a custom
    plan) plans only the years of its window, and a generic plan prunes the
    others before it starts. Keys from r alone prune only while the query
    runs, after every year was planned and started: 1.5-3.6 ms more per call
    with 30 partitions (docs/scale.md). The years read are one ordered Append of their
    primary-key range scans: still no sort.

    `is_forecast IS NOT TRUE` rather than `NOT is_forecast` keeps the column
    out of the index condition: there, after the ts range, PostgreSQL 18
    estimates the scan ~100x costlier than it is. As a filter it costs nothing.

    tests/sql/test_get_bars.py EXPLAINs calls of this function: keep it one
    SELECT, without SECURITY DEFINER or SET, so that it stays inlined.
    */
    WITH r AS MATERIALIZED (
        SELECT * FROM pgbars._get_bars_request(p_ticker, p_timeframe, p_from, p_to, p_adjust)
    )

    SELECT
        q.ts,
        q.open * q.price_factor AS open,
        q.high * q.price_factor AS high,
        q.low * q.price_factor AS low,
        q.close * q.price_factor AS close,
        CASE WHEN q.volume_factor = 1 THEN q.volume ELSE round(q.volume / q.volume_factor)::bigint END AS volume,
        q.vwap * q.price_factor AS vwap,
        q.trade_count,
        q.provider,
        q.is_provisional,
        q.fetched_at
    FROM (
        SELECT
            b.ts,
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            b.vwap,
            b.trade_count,
            b.provider,
            b.is_provisional,
            b.fetched_at,
            CASE (SELECT r.adjust_mode FROM r)
                WHEN 0 THEN 1::double precision
                WHEN 1 THEN CASE
                    WHEN b.ts < (SELECT r.t1 FROM r) THEN (SELECT r.f0 FROM r)
                    WHEN b.ts < (SELECT r.t2 FROM r) THEN (SELECT r.f1 FROM r)
                    WHEN b.ts < (SELECT r.t3 FROM r) THEN (SELECT r.f2 FROM r)
                    ELSE (SELECT r.f3 FROM r)
                END
                ELSE (SELECT r.price_factors FROM r)[width_bucket(b.ts, (SELECT r.thresholds FROM r)) + 1]
            END AS price_factor,
            CASE (SELECT r.adjust_mode FROM r)
                WHEN 0 THEN 1::double precision
                WHEN 1 THEN CASE
                    WHEN b.ts < (SELECT r.t1 FROM r) THEN (SELECT r.v0 FROM r)
                    WHEN b.ts < (SELECT r.t2 FROM r) THEN (SELECT r.v1 FROM r)
                    WHEN b.ts < (SELECT r.t3 FROM r) THEN (SELECT r.v2 FROM r)
                    ELSE (SELECT r.v3 FROM r)
                END
                ELSE (SELECT r.volume_factors FROM r)[width_bucket(b.ts, (SELECT r.thresholds FROM r)) + 1]
            END AS volume_factor
        FROM pgbars.ohlc_bars_v2 AS b
        WHERE
            b.symbol_id = (SELECT r.symbol_id FROM r)
            AND b.timeframe = (SELECT r.timeframe FROM r)
            AND b.ts >= (SELECT r.from_ts FROM r)
            AND b.ts < (SELECT r.to_ts FROM r)
            AND b.ts >= coalesce(least(p_from, p_to), '-infinity'::timestamptz)
            AND b.ts <= coalesce(greatest(p_from, p_to), 'infinity'::timestamptz)
            AND b.is_forecast IS NOT TRUE
            AND (
                b.provider = (SELECT r.best_provider FROM r)
                OR (b.ts, b.provider) IN (
                    SELECT
                        rival.ts,
                        rival.provider
                    FROM r
                    CROSS JOIN LATERAL pgbars._get_bars_rivals(
                        r.symbol_id, r.timeframe, r.from_ts, r.to_ts, r.ranking, r.best_provider
                    ) AS rival
                )
            )
        ORDER BY b.ts
        LIMIT (SELECT NULL::bigint)
    ) AS q;
$$;

COMMENT ON FUNCTION pgbars.get_bars(text, text, timestamptz, timestamptz, text) IS
'One bar per ts with p_from <= ts < p_to, in ts order, of the ticker and timeframe: the provider of the '
'enabled history route with the lowest priority number, else of a live route (provisional), else any other '
'(by name); forecasts excluded. p_adjust: none (as traded), splits (default) or all (splits and cash '
'dividends), from corporate_actions at read time. Unknown symbol: no rows; bad input: 22023.';
