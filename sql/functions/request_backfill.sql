-- Backfill a ticker by name: creates the symbol if new, then seeds it.
CREATE OR REPLACE FUNCTION pgbars.request_backfill(
    p_ticker text,
    p_timeframes text[] DEFAULT '{h1}',
    p_start date DEFAULT NULL,
    p_end date DEFAULT NULL,
    p_years integer DEFAULT 2
)
RETURNS jsonb
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
    /* The SQL editor's and `pgbars request`'s door to seed_backfill_for_symbol. */
    SELECT pgbars.seed_backfill_for_symbol(
        pgbars._ensure_symbol(p_ticker), p_timeframes, p_start, p_end, p_years
    );
$$;

COMMENT ON FUNCTION pgbars.request_backfill(text, text[], date, date, integer) IS
'Requests backfill for a ticker (created if new): validates ticker, timeframes and window, '
'then seeds jobs and chunks like seed_backfill_for_symbol. Returns the jobs as jsonb.';
