-- Triggers. Applied after the functions on every upgrade. Trigger functions
-- live in sql/functions/ (one per file), except the watchlist's below.

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

-- The references of ohlc_bars_v2 (migration 0004): checked once per statement
-- instead of by three foreign keys once per row. Transition tables allow one
-- event per trigger, hence one trigger for INSERT and one for UPDATE (MERGE,
-- COPY and INSERT ... ON CONFLICT fire them as well).
CREATE OR REPLACE TRIGGER ohlc_bars_v2_check_references_insert
AFTER INSERT ON pgbars.ohlc_bars_v2
REFERENCING NEW TABLE AS new_bars
FOR EACH STATEMENT
EXECUTE FUNCTION pgbars._check_bar_references();

CREATE OR REPLACE TRIGGER ohlc_bars_v2_check_references_update
AFTER UPDATE ON pgbars.ohlc_bars_v2
REFERENCING NEW TABLE AS new_bars
FOR EACH STATEMENT
EXECUTE FUNCTION pgbars._check_bar_references();

-- Deleting symbols deletes their bars (was ON DELETE CASCADE).
CREATE OR REPLACE TRIGGER symbols_delete_bars
AFTER DELETE ON pgbars.symbols
REFERENCING OLD TABLE AS old_symbols
FOR EACH STATEMENT
EXECUTE FUNCTION pgbars._delete_symbol_bars();

-- A key that bars use cannot be deleted (timeframes, providers) or changed.
CREATE OR REPLACE TRIGGER symbols_keep_bar_references_key
AFTER UPDATE OF id ON pgbars.symbols
FOR EACH ROW
WHEN (old.id IS DISTINCT FROM new.id)
EXECUTE FUNCTION pgbars._refuse_orphaning_bars();

CREATE OR REPLACE TRIGGER timeframes_keep_bar_references
AFTER DELETE ON pgbars.timeframes
FOR EACH ROW
EXECUTE FUNCTION pgbars._refuse_orphaning_bars();

CREATE OR REPLACE TRIGGER timeframes_keep_bar_references_key
AFTER UPDATE OF name ON pgbars.timeframes
FOR EACH ROW
WHEN (old.name IS DISTINCT FROM new.name)
EXECUTE FUNCTION pgbars._refuse_orphaning_bars();

CREATE OR REPLACE TRIGGER providers_keep_bar_references
AFTER DELETE ON pgbars.providers
FOR EACH ROW
EXECUTE FUNCTION pgbars._refuse_orphaning_bars();

CREATE OR REPLACE TRIGGER providers_keep_bar_references_key
AFTER UPDATE OF name ON pgbars.providers
FOR EACH ROW
WHEN (old.name IS DISTINCT FROM new.name)
EXECUTE FUNCTION pgbars._refuse_orphaning_bars();

-- TRUNCATE ... CASCADE of a referenced table empties the bars too.
CREATE OR REPLACE TRIGGER symbols_truncate_bars
AFTER TRUNCATE ON pgbars.symbols
FOR EACH STATEMENT
EXECUTE FUNCTION pgbars._truncate_bars();

CREATE OR REPLACE TRIGGER timeframes_truncate_bars
AFTER TRUNCATE ON pgbars.timeframes
FOR EACH STATEMENT
EXECUTE FUNCTION pgbars._truncate_bars();

CREATE OR REPLACE TRIGGER providers_truncate_bars
AFTER TRUNCATE ON pgbars.providers
FOR EACH STATEMENT
EXECUTE FUNCTION pgbars._truncate_bars();
