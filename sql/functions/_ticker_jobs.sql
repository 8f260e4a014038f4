-- The backfill jobs of the given tickers (normalised), for claim filters.
CREATE OR REPLACE FUNCTION pgbars._ticker_jobs(p_tickers text[])
RETURNS SETOF bigint
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /* Raises 22023 for a ticker that is not valid, like every ticker input. */
    SELECT j.id
    FROM pgbars.backfill_jobs AS j
    INNER JOIN pgbars.symbols AS s ON j.symbol_id = s.id
    WHERE s.ticker::text IN (
        SELECT pgbars.normalize_ticker(t.ticker) FROM unnest(p_tickers) AS t (ticker)
    );
$$;

COMMENT ON FUNCTION pgbars._ticker_jobs(text[]) IS
'Ids of the backfill jobs of p_tickers (normalised); used by the claim and next_claimable_at filters.';
