-- Trigger function: truncating a table that bars refer to truncates the bars.
CREATE OR REPLACE FUNCTION pgbars._truncate_bars()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
AFTER TRUNCATE on symbols, timeframes and providers. With foreign keys,
TRUNCATE of a referenced table was refused unless it cascaded to (or
named) ohlc_bars_v2; other tables still refer to these three, so a
TRUNCATE of one gets here only with CASCADE (or naming those tables), and
the bars go with it. SECURITY INVOKER:
as with the cascade, the caller needs TRUNCATE on ohlc_bars_v2 too.
*/
BEGIN
    -- Empty already when the same TRUNCATE ... CASCADE reached ohlc_bars_v2
    -- through the declared (not enforced) foreign key of PostgreSQL 18, which
    -- cascades TRUNCATE; a second TRUNCATE of it here would be refused.
    IF EXISTS (SELECT FROM pgbars.ohlc_bars_v2) THEN
        TRUNCATE pgbars.ohlc_bars_v2;
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbars._truncate_bars() IS
'Trigger function (AFTER TRUNCATE on symbols, timeframes, providers): truncates ohlc_bars_v2, '
'as a TRUNCATE ... CASCADE through its foreign keys did.';
