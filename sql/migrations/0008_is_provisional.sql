-- The bars' provisional flag gets the name of what it means: today's live
-- bars, replaced once history covers their session (0005 gave is_intraday
-- that meaning; timeframes.is_intraday still means m1..h4). get_bars returns
-- the column by name, so its old signature goes here; the routines are
-- re-created after the migrations. The partial index follows the column.
ALTER TABLE pgbars.ohlc_bars_v2 RENAME COLUMN is_intraday TO is_provisional;

DROP FUNCTION IF EXISTS pgbars.get_bars(text, text, timestamptz, timestamptz);

-- PostgreSQL 18 names NOT NULL constraints after their column; the name
-- follows the column, as a fresh install would have it.
DO $$
BEGIN
    IF EXISTS (
        SELECT FROM pg_catalog.pg_constraint
        WHERE
            conrelid = 'pgbars.ohlc_bars_v2'::regclass
            AND conname = 'ohlc_bars_v2_is_intraday_not_null'
    ) THEN
        ALTER TABLE pgbars.ohlc_bars_v2
        RENAME CONSTRAINT ohlc_bars_v2_is_intraday_not_null TO ohlc_bars_v2_is_provisional_not_null;
    END IF;
END;
$$;
