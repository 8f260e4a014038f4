-- ohlc_bars_v2's references checked once per statement instead of once per
-- row (issue 3, docs/benchmarks.md): the three foreign keys ran three
-- lookups for every bar written, though a chunk's bars share one symbol,
-- timeframe and provider. Their guarantees are kept by triggers (sql/triggers.sql:
-- _check_bar_references, _delete_symbol_bars, _refuse_orphaning_bars,
-- _truncate_bars). The end state is that of sql/schema.sql.

ALTER TABLE pgbars.ohlc_bars_v2
DROP CONSTRAINT ohlc_bars_v2_symbol_id_fkey,
DROP CONSTRAINT ohlc_bars_v2_timeframe_fkey,
DROP CONSTRAINT ohlc_bars_v2_provider_fkey;

-- PostgreSQL 18 can declare a foreign key without enforcing it: catalog
-- tools still see symbol_id as a reference to symbols (and its cascade,
-- which _delete_symbol_bars performs). Older servers go without.
DO $$
BEGIN
    IF current_setting('server_version_num')::integer >= 180000 THEN
        EXECUTE 'ALTER TABLE pgbars.ohlc_bars_v2 ADD CONSTRAINT ohlc_bars_v2_symbol_id_fkey'
        || ' FOREIGN KEY (symbol_id) REFERENCES pgbars.symbols (id) ON DELETE CASCADE NOT ENFORCED';
    END IF;
END;
$$;
