-- Of these tickers, the ones pgbars does not know (no symbol), normalised.
CREATE OR REPLACE FUNCTION pgbars.unknown_tickers(p_tickers text[])
RETURNS text[]
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /*
    For read_bars (worker/reading.py), which refuses a ticker pgbars does not
    know with one clear error instead of an empty frame. Each ticker is
    normalised as every ticker input is: an invalid one raises 22023.
    SECURITY DEFINER: pgbars_reader may not SELECT symbols.
    */
    SELECT coalesce(array_agg(t.ticker ORDER BY u.n), '{}')
    FROM unnest(p_tickers) WITH ORDINALITY AS u (raw, n)
    CROSS JOIN LATERAL (SELECT pgbars.normalize_ticker(u.raw)::text AS ticker) AS t
    WHERE NOT EXISTS (SELECT FROM pgbars.symbols AS s WHERE s.ticker = t.ticker);
$$;

COMMENT ON FUNCTION pgbars.unknown_tickers(text[]) IS
'The tickers of p_tickers (normalised) that pgbars has no symbol for, in order; an invalid one raises 22023.';
