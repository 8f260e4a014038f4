-- Merge the bars a worker staged in its session into ohlc_bars_v2: history and live bars alike.
CREATE OR REPLACE FUNCTION pgbars._merge_staged_bars(
    p_symbol_id uuid,
    p_timeframe text,
    p_provider text,
    p_provisional boolean
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pgbars, pg_temp
AS $$
/*
The one write of fetched bars: store_chunk_bars (history, p_provisional
false) and store_live_bars (today's bars, true) both call it, inside the
worker's transaction, after the worker COPYed the validated bars into
pg_temp.pgbars_staged_bars. Bars are merged on the table's key; a row whose
values did not change is not rewritten (no dead tuple, fetched_at kept), so
re-fetching a range costs reads only. Returns the bars inserted or updated.

MERGE rather than INSERT ... ON CONFLICT: new rows are plain inserts (no
speculative insertion) and the existing rows are read once, as one index
range (the ts bounds keep it to the staged range, not the symbol's whole
history), instead of one probe per row. Measured in docs/benchmarks.md. A
lease gives its rows one writer; were another transaction to insert the
same key meanwhile, this raises unique_violation and the worker retries.
SECURITY INVOKER: the staging table belongs to the caller's role.
*/
DECLARE
    v_first_ts timestamptz;
    v_last_ts timestamptz;
    v_changed integer;
BEGIN
    SELECT min(s.ts), max(s.ts) INTO v_first_ts, v_last_ts FROM pg_temp.pgbars_staged_bars AS s;

    MERGE INTO pgbars.ohlc_bars_v2 AS b
    USING (
        SELECT
            s.ts,
            s.open,
            s.high,
            s.low,
            s.close,
            s.volume::bigint AS volume,
            s.vwap,
            s.trade_count
        FROM pg_temp.pgbars_staged_bars AS s
    ) AS s
        ON
            b.symbol_id = p_symbol_id
            AND b.timeframe = p_timeframe
            AND b.provider = p_provider
            AND NOT b.is_forecast
            AND b.ts = s.ts
            AND b.ts BETWEEN v_first_ts AND v_last_ts
    WHEN MATCHED AND (
        b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count, b.is_provisional, b.adjustment
    ) IS DISTINCT FROM (
        s.open, s.high, s.low, s.close, s.volume, s.vwap, s.trade_count, p_provisional, 'raw'
    ) THEN
        UPDATE SET
            open = s.open,
            high = s.high,
            low = s.low,
            close = s.close,
            volume = s.volume,
            vwap = s.vwap,
            trade_count = s.trade_count,
            is_provisional = p_provisional,
            adjustment = 'raw',
            fetched_at = now()
    WHEN NOT MATCHED THEN
        INSERT (
            symbol_id, timeframe, ts, provider, is_forecast, open, high, low, close,
            volume, vwap, trade_count, is_provisional, adjustment, fetched_at
        )
        VALUES (
            p_symbol_id, p_timeframe, s.ts, p_provider, FALSE, s.open, s.high,
            s.low, s.close, s.volume, s.vwap, s.trade_count, p_provisional, 'raw', now()
        );
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION pgbars._merge_staged_bars(uuid, text, text, boolean) IS
'Merges the caller''s pg_temp.pgbars_staged_bars into ohlc_bars_v2 under one symbol, timeframe and provider '
'(history or provisional); unchanged rows are not rewritten. Returns the bars inserted or updated.';
