-- Remove a ticker from a watchlist; its jobs and bars stay.
CREATE OR REPLACE FUNCTION pgbars.remove_from_watchlist(
    p_ticker text,
    p_watchlist text DEFAULT 'default'
)
RETURNS boolean
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /* Bars already fetched are history worth keeping, so nothing else is deleted. */
    WITH removed AS (
        DELETE FROM pgbars.watchlist_items AS i
        USING pgbars.watchlists AS w, pgbars.symbols AS s
        WHERE
            i.watchlist_id = w.id
            AND i.symbol_id = s.id
            AND w.name = btrim(p_watchlist)
            AND s.ticker = pgbars.normalize_ticker(p_ticker)
        RETURNING 1
    )

    SELECT count(*) > 0 FROM removed;
$$;

COMMENT ON FUNCTION pgbars.remove_from_watchlist(text, text) IS
'Removes a ticker from a watchlist; returns false if it was not there. Jobs and bars are kept.';
