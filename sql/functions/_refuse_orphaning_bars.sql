-- Row-level trigger function: a symbol, timeframe or provider that bars use keeps its key.
CREATE OR REPLACE FUNCTION pgbars._refuse_orphaning_bars()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The NO ACTION side of ohlc_bars_v2's references: AFTER DELETE on timeframes
and providers, and AFTER UPDATE of the key of symbols, timeframes and
providers (the triggers fire only when the key changed), raise 23503 while
a bar still uses the old key. A bar write in flight holds the row FOR KEY
SHARE (_check_bar_references), so the DELETE or key change waited for its
commit and this check sees its bars (VOLATILE: under READ COMMITTED the
check takes a new snapshot, not the one its statement started with). Deleting a symbol deletes its bars
instead (_delete_symbol_bars). SECURITY DEFINER, as foreign-key checks run
as the bars table's owner.
*/
DECLARE
    v_column text;
    v_key text;
    v_used boolean;
BEGIN
    IF tg_table_name = 'symbols' THEN
        v_column := 'symbol_id';
        v_key := old.id::text;
        v_used := EXISTS (SELECT 1 FROM pgbars.ohlc_bars_v2 AS b WHERE b.symbol_id = old.id);
    ELSIF tg_table_name = 'timeframes' THEN
        v_column := 'timeframe';
        v_key := old.name;
        v_used := EXISTS (SELECT 1 FROM pgbars.ohlc_bars_v2 AS b WHERE b.timeframe = old.name);
    ELSE
        v_column := 'provider';
        v_key := old.name;
        v_used := EXISTS (SELECT 1 FROM pgbars.ohlc_bars_v2 AS b WHERE b.provider = old.name);
    END IF;
    IF v_used THEN
        RAISE EXCEPTION 'update or delete on table "%": % % is still used by table "ohlc_bars_v2"',
            tg_table_name, v_column, v_key
            USING ERRCODE = 'foreign_key_violation',
            DETAIL = format('Key (%s)=(%s) is still referenced from table "ohlc_bars_v2".', v_column, v_key),
            SCHEMA = 'pgbars',
            TABLE = tg_table_name;
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbars._refuse_orphaning_bars() IS
'Trigger function (AFTER DELETE or key UPDATE FOR EACH ROW on symbols, timeframes, providers): '
'raises 23503 while ohlc_bars_v2 still uses the old key, as its foreign keys did.';
