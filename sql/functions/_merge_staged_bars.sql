-- Merge the bars a worker staged for a lease into ohlc_bars_v2: history and live bars alike.
CREATE OR REPLACE FUNCTION pgbars._merge_staged_bars(
    p_lease_id uuid,
    p_first_session date,
    p_last_session date,
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
SET plan_cache_mode = force_custom_plan
AS $$
/*
The one write of fetched bars: store_chunk_bars (history, p_provisional
false) and store_live_bars (today's bars, true) both call it, inside the
worker's transaction, after the worker COPYed the validated bars into
pgbars.staged_bars under the lease's id. Bars are merged on the table's key; a row whose
values did not change is not rewritten (no dead tuple, fetched_at kept), so
re-fetching a range costs reads only. Returns the bars inserted or updated.

Two rules keep a worker (or a faulty one) from losing stored history: a
staged bar outside the lease's sessions (00:00 New York of the Monday of
the first session's week up to the end of the last session's day) raises
22023 and nothing of the lease is stored, and a provisional bar never
replaces a history bar (is_provisional false) of the same key.

MERGE rather than INSERT ... ON CONFLICT: new rows are plain inserts (no
speculative insertion) and the existing rows are read once, as one index
range (the ts bounds keep it to the staged range, not the symbol's whole
history), instead of one probe per row. Measured in docs/benchmarks.md. A
lease gives its rows one writer; were another transaction to insert the
same key meanwhile, this raises unique_violation and the worker retries.
plan_cache_mode: the MERGE is planned for each lease's actual range and
rows. A generic plan (what PL/pgSQL switches to after five calls on one
connection) guessed both and, on the shared staging table, took minutes per
50,000-bar chunk instead of a second (docs/benchmarks.md).
Called by the SECURITY DEFINER store functions only; the worker role
cannot execute it, nor write the bars itself.
*/
DECLARE
    v_first_ts timestamptz;
    v_last_ts timestamptz;
    v_changed integer;
    v_from timestamptz := date_trunc('week', p_first_session)::timestamp AT TIME ZONE 'America/New_York';
    v_to timestamptz := (p_last_session + 1)::timestamp AT TIME ZONE 'America/New_York';
BEGIN
    SELECT min(s.ts), max(s.ts) INTO v_first_ts, v_last_ts
    FROM pgbars.staged_bars AS s
    WHERE s.lease_id = p_lease_id;
    IF v_first_ts < v_from OR v_last_ts >= v_to THEN
        RAISE EXCEPTION 'a staged bar at % is outside the lease''s sessions (% to %): nothing stored',
            CASE WHEN v_first_ts < v_from THEN v_first_ts ELSE v_last_ts END, p_first_session, p_last_session
            USING ERRCODE = '22023';
    END IF;

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
        FROM pgbars.staged_bars AS s
        WHERE s.lease_id = p_lease_id
    ) AS s
        ON
            b.symbol_id = p_symbol_id
            AND b.timeframe = p_timeframe
            AND b.provider = p_provider
            AND NOT b.is_forecast
            AND b.ts = s.ts
            AND b.ts BETWEEN v_first_ts AND v_last_ts
    WHEN MATCHED AND p_provisional AND NOT b.is_provisional THEN
        DO NOTHING
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

COMMENT ON FUNCTION pgbars._merge_staged_bars(uuid, date, date, uuid, text, text, boolean) IS
'Merges a lease''s rows of pgbars.staged_bars into ohlc_bars_v2 under one symbol, timeframe and provider '
'(history or provisional); unchanged rows are not rewritten, a provisional bar never replaces history, '
'a bar outside the lease''s sessions raises. Returns the bars inserted or updated.';
