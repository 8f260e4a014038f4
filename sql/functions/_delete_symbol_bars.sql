-- Statement-level trigger function: deleted symbols take their bars with them.
CREATE OR REPLACE FUNCTION pgbars._delete_symbol_bars()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The ON DELETE CASCADE of ohlc_bars_v2.symbol_id, once per statement (AFTER
DELETE on symbols, transition table old_symbols): one DELETE of every bar of
the deleted symbols, by the primary key's leading column. A bar write in
flight holds its symbol FOR KEY SHARE (_check_bar_references), so the
symbol's DELETE waited for it and this statement sees its bars. SECURITY
DEFINER, as cascades run as the bars table's owner.
*/
BEGIN
    DELETE FROM pgbars.ohlc_bars_v2 AS b
    USING old_symbols AS o
    WHERE b.symbol_id = o.id;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbars._delete_symbol_bars() IS
'Trigger function (AFTER DELETE FOR EACH STATEMENT on symbols, transition table old_symbols): '
'deletes the deleted symbols'' bars, as ON DELETE CASCADE did.';
