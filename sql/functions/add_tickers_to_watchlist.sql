-- add_to_watchlist for many tickers in one call: one row per ticker, in the order given.
CREATE OR REPLACE FUNCTION pgbars.add_tickers_to_watchlist(
    p_tickers text[],
    p_watchlist text DEFAULT 'default'
)
RETURNS SETOF jsonb
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    `pgbars watch add` with thousands of tickers: each is added as
    add_to_watchlist adds one (its trigger seeds the symbol's h1), in one
    statement; a ticker given twice is added once (the second is reported
    as already there). One bad ticker raises and adds none of them.
    */
    SELECT pgbars.add_to_watchlist(u.ticker, p_watchlist)
    FROM unnest(p_tickers) WITH ORDINALITY AS u (ticker, n)
    ORDER BY u.n;
$$;

COMMENT ON FUNCTION pgbars.add_tickers_to_watchlist(text[], text) IS
'add_to_watchlist for every ticker of p_tickers in one statement, in the order given: one jsonb per ticker; '
'one bad ticker adds none.';
