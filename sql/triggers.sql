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
A watched symbol is promised the last 2 years of h1, up to the last
completed session. Seeding plans only the sessions of that window no chunk
of the job covers yet: a new symbol gets its job; a symbol whose h1 job was
requested shorter (--years 1) or ending in the past (--end) gets the missing
sessions added to the same job, which then rolls forward like any open-ended
job; a symbol already covered (another watchlist, another day) gets nothing
new. Errors are not caught: if seeding fails, the insert fails with the reason.
*/
BEGIN
    PERFORM pgbars.seed_backfill_for_symbol(new.symbol_id, '{h1}');
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbars._seed_watchlist_item() IS
'Trigger function: makes sure a symbol added to a watchlist has 2 years of h1 planned, extending its h1 job.';

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

-- The chunk queue's lanes (backfill_lanes), kept from the chunks once per
-- statement; one trigger per event, as transition tables require.
CREATE OR REPLACE TRIGGER backfill_chunks_lanes_insert
AFTER INSERT ON pgbars.backfill_chunks
REFERENCING NEW TABLE AS new_chunks
FOR EACH STATEMENT
EXECUTE FUNCTION pgbars._backfill_chunks_changed();

CREATE OR REPLACE TRIGGER backfill_chunks_lanes_update
AFTER UPDATE ON pgbars.backfill_chunks
REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks
FOR EACH STATEMENT
EXECUTE FUNCTION pgbars._backfill_chunks_changed();

CREATE OR REPLACE TRIGGER backfill_chunks_lanes_delete
AFTER DELETE ON pgbars.backfill_chunks
REFERENCING OLD TABLE AS old_chunks
FOR EACH STATEMENT
EXECUTE FUNCTION pgbars._backfill_chunks_changed();

CREATE OR REPLACE TRIGGER backfill_chunks_lanes_truncate
AFTER TRUNCATE ON pgbars.backfill_chunks
FOR EACH STATEMENT
EXECUTE FUNCTION pgbars._truncate_backfill_lanes();
