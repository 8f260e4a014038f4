-- One spelling of a share class: BRK.B. normalize_ticker() now writes BRK-B and
-- BRK/B with a dot, and the ticker domain no longer admits the hyphen, so that
-- a plain INSERT cannot store a second spelling either (docs/database.md#tickers).
--
-- Symbols stored before under a hyphen (BF-B) take the dot (BF.B): same id,
-- so their bars, jobs and watchlists stay theirs. Where both spellings were
-- stored (BRK-B and BRK.B), they are one company twice, and the hyphen's
-- symbol is merged into the dot's:
-- - watchlists: the dot's symbol is on every watchlist either was on;
-- - jobs: a job of a timeframe the dot's symbol has none of moves over with its
--   chunks, derived timeframes and gap repairs; where both have a job, the
--   dot's stays and gets the other's derived timeframes (the other's chunks
--   go: its bars are kept below, and a session without bars is fetched again);
-- - live refreshes likewise (one per timeframe: the dot's stays);
-- - bars and quarantined rows move over; a bar both have (same timeframe,
--   time, provider) is the same bar fetched twice: the dot's is kept;
-- - then the hyphen's symbol is deleted, with the duplicates left behind.
-- Nothing here calls a pgbars function: routines are re-applied after the
-- migrations, and a database built from the chain has no symbols yet.
DO $$
DECLARE
    v_pair record;
BEGIN
    FOR v_pair IN
        SELECT
            o.id AS old_id,
            o.ticker::text AS old_ticker,
            c.id AS new_id,
            c.ticker::text AS new_ticker
        FROM pgbars.symbols AS o
        INNER JOIN pgbars.symbols AS c ON c.ticker::text = replace(o.ticker::text, '-', '.')
        WHERE strpos(o.ticker::text, '-') > 0
        ORDER BY o.ticker
    LOOP
        UPDATE pgbars.watchlist_items AS i
        SET symbol_id = v_pair.new_id
        WHERE
            i.symbol_id = v_pair.old_id
            AND NOT EXISTS (
                SELECT 1 FROM pgbars.watchlist_items AS d
                WHERE d.watchlist_id = i.watchlist_id AND d.symbol_id = v_pair.new_id
            );

        INSERT INTO pgbars.derived_jobs (source_job_id, timeframe, created_at)
        SELECT
            n.id,
            dj.timeframe,
            dj.created_at
        FROM pgbars.derived_jobs AS dj
        INNER JOIN pgbars.backfill_jobs AS o ON dj.source_job_id = o.id
        INNER JOIN pgbars.backfill_jobs AS n ON o.timeframe = n.timeframe
        WHERE o.symbol_id = v_pair.old_id AND n.symbol_id = v_pair.new_id
        ON CONFLICT DO NOTHING;

        UPDATE pgbars.backfill_jobs AS j
        SET symbol_id = v_pair.new_id, updated_at = now()
        WHERE
            j.symbol_id = v_pair.old_id
            AND NOT EXISTS (
                SELECT 1 FROM pgbars.backfill_jobs AS d
                WHERE d.symbol_id = v_pair.new_id AND d.timeframe = j.timeframe
            );

        UPDATE pgbars.live_refreshes AS r
        SET symbol_id = v_pair.new_id
        WHERE
            r.symbol_id = v_pair.old_id
            AND NOT EXISTS (
                SELECT 1 FROM pgbars.live_refreshes AS d
                WHERE d.symbol_id = v_pair.new_id AND d.timeframe = r.timeframe
            );

        UPDATE pgbars.rejected_bars
        SET symbol_id = v_pair.new_id
        WHERE symbol_id = v_pair.old_id;

        UPDATE pgbars.ohlc_bars_v2 AS b
        SET symbol_id = v_pair.new_id
        WHERE
            b.symbol_id = v_pair.old_id
            AND NOT EXISTS (
                SELECT 1 FROM pgbars.ohlc_bars_v2 AS d
                WHERE
                    d.symbol_id = v_pair.new_id
                    AND d.timeframe = b.timeframe
                    AND d.ts = b.ts
                    AND d.provider = b.provider
                    AND d.is_forecast = b.is_forecast
            );

        DELETE FROM pgbars.symbols WHERE id = v_pair.old_id;
        RAISE NOTICE 'merged the symbol % into %', v_pair.old_ticker, v_pair.new_ticker;
    END LOOP;

    UPDATE pgbars.symbols
    SET ticker = replace(ticker::text, '-', '.')
    WHERE strpos(ticker::text, '-') > 0;
END;
$$;

ALTER DOMAIN pgbars.ticker DROP CONSTRAINT ticker_check;

ALTER DOMAIN pgbars.ticker ADD CONSTRAINT ticker_check
CHECK (value ~ '^[A-Z][A-Z0-9]{0,9}(\.[A-Z0-9]{1,4})?$');
