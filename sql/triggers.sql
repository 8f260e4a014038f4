-- Triggers. Applied after the functions on every upgrade.

-- Seed h1 history for a symbol added to a watchlist.
CREATE OR REPLACE FUNCTION pgbars._seed_watchlist_item()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
Seeds 2 years of h1 when the symbol has no h1 job yet. A symbol already
covered (another watchlist, another day) creates nothing new: its job
exists, and roll-forward keeps it current. Errors are not caught: if
seeding fails, the insert fails with the reason.
*/
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM pgbars.backfill_jobs AS j
        WHERE j.symbol_id = new.symbol_id AND j.timeframe = 'h1'
    ) THEN
        PERFORM pgbars.seed_backfill_for_symbol(new.symbol_id, '{h1}');
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbars._seed_watchlist_item() IS
'Trigger function: seeds 2 years of h1 backfill for a symbol added to a watchlist, unless it has an h1 job.';

CREATE OR REPLACE TRIGGER watchlist_items_seed_backfill
AFTER INSERT ON pgbars.watchlist_items
FOR EACH ROW
EXECUTE FUNCTION pgbars._seed_watchlist_item();
